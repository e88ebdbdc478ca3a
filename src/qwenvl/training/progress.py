"""The Rich progress bar, labelled by stage rather than by epoch.

Training reads an endless stream and stops at `max_steps`, so Lightning runs with
`max_epochs=-1` and its bar would read "Epoch 0/-2"; here it reads the stage's name
("multitask") and keeps Lightning's label where a run does count epochs.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StageProgressBar(RichProgressBar):
    """RichProgressBar whose training label is the stage's name when the run has no epoch budget
    (`max_epochs` of -1 or None)."""

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs not in (-1, None):
            return super()._get_train_description(current_epoch)
        stage = getattr(getattr(self.trainer.lightning_module, "stage", None), "name", None)
        label = stage or "Training"
        # padded as Lightning pads it, so the bar does not jump when validation shows its own
        return f"{label:{len(self.validation_description)}}"
