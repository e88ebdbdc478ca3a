"""Settings added with `+` that nothing reads, refused before any work.

Hydra refuses a misspelt key (`evaluate.limt=3`) but accepts it with a `+` (`+evaluate.limt=3`):
the run would go on without the setting the user meant. Here the composed config is held against
the same config composed without the user's overrides (only the `experiment` and `hparams_search`
chosen, which may add settings of their own): a new top-level key, or a new key in a node whose
keys do not depend on a group option, is refused with the keys that exist there. Nodes that a
group option fills (`stage`, `encoder`, `data`, ...) take new keys by design (`+stage.max_objects`),
and so do the pipeline's `steps` and `per_stage` (new stages).
"""

from __future__ import annotations

from hydra import compose
from omegaconf import DictConfig

from qwenvl.cli.key_hints import did_you_mean

# Nodes whose keys are the same whichever group options are chosen.
FIXED_NODES = ("evaluate", "parallel", "eval", "paths")
CHOICES = ("experiment", "hparams_search")  # groups that may bring settings of their own


def check_known_keys(
    cfg: DictConfig, config_name: str, overrides: list[str], hydra_overrides: list[str] = ()
) -> None:
    """Raise ValueError naming each key of `cfg` that the reference composition lacks. `config_name`:
    the primary config the run composed (`--config-name` may name the user's own);
    `hydra_overrides`: the run's, of which `hydra.searchpath` is kept (experiments may live there)."""
    chosen = [o for o in overrides if o.lstrip("+~").split("=")[0] in CHOICES]
    chosen += [o for o in hydra_overrides if o.startswith("hydra.searchpath=")]
    reference = compose(config_name=config_name, overrides=chosen)
    unknown = [(k, sorted(reference)) for k in cfg if k not in reference and k != "hydra"]
    for node in FIXED_NODES:
        if isinstance(cfg.get(node), DictConfig) and isinstance(reference.get(node), DictConfig):
            there = sorted(reference[node])
            unknown += [(f"{node}.{k}", there) for k in cfg[node] if k not in reference[node]]
    if unknown:
        key, there = unknown[0]
        more = f" (and {', '.join(k for k, _ in unknown[1:])})" if len(unknown) > 1 else ""
        guess = did_you_mean(key.rpartition(".")[2], there)
        raise ValueError(
            f"{key}{more}: no such setting, so nothing would read it (a `+` adds any key).{guess} "
            f"The settings there: {', '.join(there)}"
        )
