"""Start a stage from the previous stage's weights, re-gridding the encoder's position table."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from qwenvl.models.posembed import resize_grid
from qwenvl.models.qwen_vl import WEIGHTS_FILE, QwenVLModel

log = logging.getLogger(__name__)
POS_KEY = "encoder.positional_embedding"


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Model weights from a Lightning .ckpt (read with weights_only=True) or a save_pretrained dir."""
    path = Path(path)
    if path.is_dir():
        return load_file(str(path / WEIGHTS_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"stage.init_from={path}: no such checkpoint file or directory")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt)
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")} or state


def load_into(model: QwenVLModel, path: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Copy weights into `model`; a learned position table of another grid is bicubically resized.
    `state`: the file's weights when the caller has read them already (`read_weights(path)`)."""
    state = dict(read_weights(path) if state is None else state)  # a copy: the resize replaces a key
    own = model.state_dict()
    if POS_KEY in state and state[POS_KEY].shape != own[POS_KEY].shape:
        src, dst = math.isqrt(state[POS_KEY].shape[0]), math.isqrt(own[POS_KEY].shape[0])
        log.info("resizing encoder position table %dx%d -> %dx%d", src, src, dst, dst)
        state[POS_KEY] = resize_grid(state[POS_KEY], (src, src), (dst, dst))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: does not fit this model; missing {missing[:8]}, unexpected {unexpected[:8]}"
        )
