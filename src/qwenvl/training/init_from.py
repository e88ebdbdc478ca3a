"""Start a stage from the previous stage's weights, re-gridding the encoder's position table."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from qwenvl.models.posembed import resize_grid
from qwenvl.models.qwen_vl import WEIGHTS_FILE, QwenVLModel
from qwenvl.training.export import EXPORT_NAME

log = logging.getLogger(__name__)
POS_KEY = "encoder.positional_embedding"


# What every error below ends with: the inputs `stage.init_from` takes.
TAKES = "pass the previous stage's checkpoints/last.ckpt (a Lightning .ckpt) or a save_pretrained directory"
# What to do when a checkpoint is of another model: the fix is in the config, not the file.
SAME_MODEL = (
    "Give this stage the encoder, adapter and llm settings of the run that wrote the checkpoint (its "
    ".hydra/overrides.yaml, or a pipeline stage's stage.json, lists them), or pass a checkpoint of a "
    "model with this stage's settings"
)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights from a Lightning .ckpt (read with weights_only=True), a save_pretrained dir or its
    model.safetensors. Errors name the file, what is wrong with it, and what to pass instead."""
    path = Path(path)
    if path.is_dir():
        return _read_dir(path)
    if not path.is_file():
        raise FileNotFoundError(f"stage.init_from={path}: no such checkpoint file or directory; {TAKES}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    ckpt = load_checkpoint(path, "stage.init_from", TAKES)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"stage.init_from={path}: holds no model weights (a {type(ckpt).__name__}); {TAKES}")
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")} or state


def _read_dir(path: Path) -> dict[str, torch.Tensor]:
    """A save_pretrained directory's weights; any other directory is refused, saying what it is."""
    if (path / WEIGHTS_FILE).is_file():
        return load_file(str(path / WEIGHTS_FILE))
    refuse_sharded(path, "stage.init_from")
    from qwenvl.models.convert import is_released_dir  # convert imports the model module

    if is_released_dir(path):  # loading it here would hold a second whole model in memory
        raise ValueError(
            f"stage.init_from={path}: a released Qwen-VL directory (its own key layout, in shards). "
            f"Convert it once, `qwenvl-convert {path} OUT_DIR`, then pass stage.init_from=OUT_DIR"
        )
    raise FileNotFoundError(
        f"stage.init_from={path}: a directory without {WEIGHTS_FILE}, so no save_pretrained directory"
        f"{ckpts_inside(path)}; {TAKES}"
    )


def load_checkpoint(path: Path, key: str, takes: str):
    """torch.load(path, weights_only=True); a file it cannot read is a ValueError naming `key`=path,
    torch's reason and `takes` (what the key accepts)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch names no file, and a text file gives a bare `KeyError: 105`
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else "the file ends early"
        raise ValueError(
            f"{key}={path}: not a checkpoint torch can read with weights_only=True "
            f"({type(e).__name__}: {reason}); {takes}"
        ) from e


def ckpts_inside(path: Path) -> str:
    """ "; it holds a.ckpt, b.ckpt: pass one of them" for a directory given instead of its .ckpt files."""
    ckpts = sorted(p.name for p in path.glob("*.ckpt"))
    return f"; it holds {', '.join(ckpts)}: pass one of them" if ckpts else ""


def refuse_sharded(path: Path, key: str) -> None:
    """ValueError for a sharded FSDP checkpoint directory given as `key`=path, naming what to pass."""
    if not ((path / "meta.pt").is_file() or any(path.glob("*.distcp"))):
        return
    # Not loaded here: its shards' index (.metadata) is read with pickle, which weights_only
    # refuses (it can run code); converting it is the owner's explicit choice.
    raise ValueError(
        f"{key}={path}: a sharded FSDP checkpoint (*.distcp shards and meta.pt, written by "
        f"trainer=fsdp), which is read only by unpickling its .metadata. Pass the full model the run "
        f"wrote beside it at its end, {key}={path.parent / EXPORT_NAME}; or, for shards "
        f"of an unfinished run, if you trust them: python -m "
        f"lightning.fabric.utilities.consolidate_checkpoint {path} (writes {path}.consolidated), then "
        f"pass {key}={path}.consolidated"
    )


def load_into(model: QwenVLModel, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Copy weights into `model`; a learned position table of another grid is bicubically resized.
    `state`: the file's weights when the caller has read them already (`read_weights(path)`)."""
    state = dict(read_weights(path) if state is None else state)  # a copy: the resize replaces a key
    own = model.state_dict()
    if POS_KEY in state and _other_grid(state[POS_KEY], own[POS_KEY]):
        src, dst = math.isqrt(state[POS_KEY].shape[0]), math.isqrt(own[POS_KEY].shape[0])
        log.info("resizing encoder position table %dx%d -> %dx%d", src, src, dst, dst)
        state[POS_KEY] = resize_grid(state[POS_KEY], (src, src), (dst, dst))
    _check_shapes(state, own, path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"stage.init_from={path}: does not fit this model; missing {missing[:8]}, unexpected "
            f"{unexpected[:8]}. {SAME_MODEL}"
        )


def _other_grid(theirs: torch.Tensor, ours: torch.Tensor) -> bool:
    """Position tables (grid*grid, width) of another grid but the same width: a resolution change,
    which load_into resizes. Another width is another model, which _check_shapes refuses."""
    return theirs.shape != ours.shape and theirs.shape[1:] == ours.shape[1:]


def _check_shapes(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a checkpoint of another model shape before load_state_dict does, naming the file and
    the tensors (load_state_dict's `size mismatch` names neither the file nor a fix)."""
    wrong = [
        f"{k} {tuple(v.shape)} (this model: {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if wrong:
        more = f" and {len(wrong) - 4} more" if len(wrong) > 4 else ""
        raise ValueError(
            f"stage.init_from={path}: a checkpoint of a model of another shape: {'; '.join(wrong[:4])}"
            f"{more}. {SAME_MODEL}"
        )
