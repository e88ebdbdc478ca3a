"""Checkpoints written atomically: a kill during a save never leaves a half-written last.ckpt."""

from __future__ import annotations

import os
from pathlib import Path

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to `<path>.tmp`, fsync, then rename over `<path>` (rename is atomic on POSIX)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load_checkpoint(self, path, map_location=None, weights_only=True):
        # Never unpickle code from a checkpoint: tensors, numbers and plain containers only.
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)
