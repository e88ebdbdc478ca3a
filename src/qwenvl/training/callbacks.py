"""Small callbacks: the training-loss curve a pipeline summary needs, and SIGTERM handling."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class StepEnd(L.Callback):
    """Tells, at a batch's end, whether the batch ended an optimizer step: under gradient
    accumulation most batches do not, and what belongs to a whole step must wait for the one that does."""

    _step_at_start = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step_at_start = trainer.global_step

    def stepped(self, trainer) -> bool:
        """Whether the optimizer stepped during this batch (call from on_train_batch_end)."""
        return trainer.global_step != self._step_at_start


class LossHistory(StepEnd):
    """Keeps every optimizer step's training loss, so a run can report how far its loss fell."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self._pending = 0.0  # this step's micro-batch losses so far

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        # Under gradient accumulation Lightning hands each micro-batch's loss divided by their
        # number: their sum over a step is the step's mean loss, one entry per optimizer step.
        self._pending += float(loss.detach())
        if self.stepped(trainer):
            self.losses.append(self._pending)
            self._pending = 0.0

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


class PreemptionCheckpoint(StepEnd):
    """On SIGTERM (cluster pre-emption), save `last.ckpt` at the next optimizer step, then stop.

    Lightning's own handler stops at the next *batch*: with gradient accumulation that is mid-step,
    and the micro-batches already summed into the gradients would be lost to the checkpoint (a
    resumed run would then differ from one never stopped). So while training, SIGTERM only marks
    the request here; the save waits for the step to finish, and `ckpt_path=last` resumes exactly.
    After the save, `SIGTERMException` ends `fit` (qwenvl-train turns it into exit code 143).
    """

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.requested = False  # SIGTERM seen by this process
        self._previous = None  # the handler ours replaced (Lightning's), put back when training ends

    def on_train_start(self, trainer, pl_module) -> None:
        # A signal before this point went to Lightning's handler; keep it as a request all the same.
        self.requested = bool(getattr(trainer, "received_sigterm", False))
        if threading.current_thread() is threading.main_thread():  # signal.signal works only there
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        log.warning("SIGTERM: saving last.ckpt once the current optimizer step ends, then stopping")
        self.requested = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.stepped(trainer):
            return  # mid-accumulation: the gradients summed so far are in no checkpoint
        # Every rank reaches each step boundary, so all take part in this vote and, if any rank
        # was signalled, all save together (a sharded save needs every rank) and stop.
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        trainer.save_checkpoint(self.dirpath / "last.ckpt")
        log.warning("pre-empted: %s saved at step %d", self.dirpath / "last.ckpt", trainer.global_step)
        raise SIGTERMException

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handler()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore_handler()

    def _restore_handler(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
