"""A misspelt key's error names the keys that exist where it was looked for.

Hydra refuses `qwenvl-train trainer.max_stepz=5` with "Key 'max_stepz' is not in struct" and no
more. The apps are wrapped (`with_key_hints`) so that, when a run fails, the command line's
overrides are composed again one at a time and each one that sets a key the config lacks gets a
line naming the node it went into, the closest keys and every key there:

    trainer.max_stepz: no such key. Did you mean max_steps? The keys under trainer: accelerator, ...

The lines come after Hydra's own message and only when a run has already failed, so a valid run
never pays for the second composition (about 0.1 s an override).
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig

from qwenvl.paths import CONF_DIR

MULTIRUN_FLAGS = ("-m", "--multirun")
CONFIG_NAME_FLAGS = ("-cn", "--config-name")


def missing_keys(config_name: str, overrides: list[str]) -> list[str]:
    """One line per override (Hydra's command-line syntax) that sets a key `config_name` lacks,
    looked up in the config the overrides before it composed to (group options first); [] when
    every key exists. A sweep is looked up at its first value; a `glob(...)` sweep over a group
    makes the structure unknowable here, so no lines. Clears Hydra's global state: call it only
    when no app is running (after one failed)."""
    GlobalHydra.instance().clear()  # the failed app may have left its own instance behind
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return missing_keys_with(lambda ov: compose(config_name=config_name, overrides=ov), overrides)


def missing_keys_with(compose_with: Callable[[list[str]], DictConfig], overrides: list[str]) -> list[str]:
    """`missing_keys` with the composition given: `compose_with(overrides)` composes the app's
    config; usable inside a running app (the pipeline checks each stage's overrides with it)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    if any(o.value_type == ValueType.GLOB_CHOICE_SWEEP for o in parsed):
        return []
    # Group choices and top-level keys first: a dotted key may exist only under a chosen option.
    parsed.sort(key=lambda o: "." in o.key_or_group)
    lines, applied = [], []
    cfg = compose_with([])
    for o in parsed:
        try:
            cfg = compose_with(applied + [_first_value(o)])
        except Exception:  # noqa: BLE001 (any failure: look the key up in what composed)
            line = _missing(cfg, o) if o.type == OverrideType.CHANGE else None
            lines += [line] if line else []
        else:
            applied.append(_first_value(o))
    return lines


def _first_value(o: Override) -> str:
    if not o.is_sweep_override():
        return o.input_line
    return f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}"


def _missing(cfg: DictConfig, o: Override) -> str | None:
    """The line for `o` if a segment of its dotted key is not in `cfg`, else None (the override
    failed for another reason: a bad value, a group option, which Hydra's message names)."""
    parts = o.key_or_group.split(".")
    if o.package is not None or parts[0] == "hydra" or "/" in o.key_or_group:
        return None  # Hydra's own settings, and group options, which Hydra's message lists
    if len(parts) == 1 and (CONF_DIR / parts[0]).is_dir():
        return None  # an option of a group that is no key when unset (experiment, debug): the same
    node = cfg
    for depth, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return None
        keys = sorted(str(k) for k in node.keys())
        if part not in keys:
            where = ".".join(parts[:depth])
            under = f"under {where}" if where else "at the top level"
            guess = did_you_mean(part, keys)
            return f"{o.key_or_group}: no such key.{guess} The keys {under}: {', '.join(keys)}"
        node = node._get_node(part)  # the node itself: its value may interpolate the run's state
    return None


def did_you_mean(word: str, options: list[str]) -> str:
    """` Did you mean a or b?` for the options closest to a misspelt `word`; "" when none is close."""
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(close)}?" if close else ""


def _argv_overrides(argv: list[str]) -> tuple[str, list[str]] | None:
    """(config name, overrides) from an app's command line; None when it names a config directory
    or flags whose effect the lookup cannot reproduce (`--config-dir`, `--cfg`, `--info`, ...)."""
    name, overrides, args = None, [], iter(argv)
    for arg in args:
        if arg in MULTIRUN_FLAGS:
            continue
        if arg in CONFIG_NAME_FLAGS:
            name = next(args, None)
        elif arg.startswith("--config-name="):
            name = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            return None
        else:
            overrides.append(arg)
    return (name or "", overrides)


def hints(config_name: str, argv: list[str]) -> list[str]:
    """The lines for a failed run of the app whose primary config is `config_name`; [] when the
    command line cannot be looked up or the lookup itself fails (the run's error stands alone)."""
    found = _argv_overrides(argv)
    if found is None:
        return []
    name, overrides = found
    try:
        return missing_keys(name or config_name, overrides)
    except Exception:  # noqa: BLE001 (a hint must never hide the run's own error)
        return []


def with_key_hints(config_name: str) -> Callable[[Callable], Callable]:
    """Decorator for a `@hydra.main` app: after a failed run, print `hints` to stderr (or attach
    them to the exception when HYDRA_FULL_ERROR=1 lets it through)."""

    def wrap(app: Callable) -> Callable:
        @functools.wraps(app)
        def run(*args, **kwargs):
            try:
                return app(*args, **kwargs)
            except SystemExit as stop:
                if stop.code not in (0, None) and not args:
                    for line in hints(config_name, sys.argv[1:]):
                        print(line, file=sys.stderr)
                raise
            except ConfigCompositionException as error:
                for line in hints(config_name, sys.argv[1:]):
                    error.add_note(line)
                raise

        return run

    return wrap
