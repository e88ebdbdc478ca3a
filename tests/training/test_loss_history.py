"""The loss history holds one mean loss per optimizer step, with or without gradient accumulation."""

from types import SimpleNamespace

import pytest
import torch

from qwenvl.training.callbacks import LossHistory


@pytest.mark.parametrize("accumulate", [1, 3])
def test_one_entry_per_optimizer_step_at_the_steps_mean_loss(accumulate):
    history, trainer = LossHistory(), SimpleNamespace(global_step=0)
    micro_losses = [2.0, 4.0, 6.0, 1.0, 1.0, 4.0]
    for i, loss in enumerate(micro_losses):
        history.on_train_batch_start(trainer, None, None, i)
        if (i + 1) % accumulate == 0:  # Lightning steps the optimizer at the last micro-batch
            trainer.global_step += 1
        # what Lightning hands on_train_batch_end: the loss divided by the micro-batches per step
        history.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss / accumulate)}, None, i)
    steps = [micro_losses[i : i + accumulate] for i in range(0, len(micro_losses), accumulate)]
    assert history.losses == pytest.approx([sum(s) / accumulate for s in steps])
