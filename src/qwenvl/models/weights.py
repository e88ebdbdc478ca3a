"""Reading weight files without unpickling untrusted data."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat state dict from `.safetensors`, or from a torch file read with `weights_only=True`.

    A torch file whose tensors sit under `state_dict` (Lightning, open_clip training) is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path}: could not be read as a weights-only torch file ({e}). Files that need full "
            "unpickling are refused because unpickling runs code; convert it to safetensors."
        ) from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
