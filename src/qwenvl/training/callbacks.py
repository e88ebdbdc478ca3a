"""Small callbacks: the training-loss curve a pipeline summary needs, and SIGTERM handling."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class LossHistory(L.Callback):
    """Keeps every training loss, so a run can report how far its loss fell."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.losses.append(float(loss.detach()))

    # Saved in the checkpoint, so that a resumed run reports the loss it started from; a float32
    # tensor (4 bytes a step) rather than a list of Python floats.
    def state_dict(self) -> dict:
        return {"losses": torch.tensor(self.losses, dtype=torch.float32)}

    def load_state_dict(self, state_dict: dict) -> None:
        losses = state_dict.get("losses")
        self.losses = [] if losses is None else torch.as_tensor(losses).tolist()

    def summary(self, window: int = 10) -> dict[str, float]:
        """Mean of the first and the last `window` losses (noise-robust start and end points)."""
        if not self.losses:
            return {}
        w = max(1, min(window, len(self.losses) // 2 or 1))
        first, last = self.losses[:w], self.losses[-w:]
        return {"train/loss_first": sum(first) / len(first), "train/loss_last": sum(last) / len(last)}


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM (cluster pre-emption), save `last.ckpt` at the end of the current step.

    Lightning notices the signal and stops at the next batch boundary; saving here first means
    `ckpt_path=last` resumes from the step the job was stopped at, not from the last periodic save.
    """

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if getattr(trainer, "received_sigterm", False):
            trainer.save_checkpoint(self.dirpath / "last.ckpt")
