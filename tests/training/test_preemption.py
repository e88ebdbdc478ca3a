"""SIGTERM (cluster pre-emption) in-process: the save waits for the optimizer step, the run exits 143,
and the resumed run's final weights are in last.ckpt, equal to those of a run never stopped."""

import os
import signal

import lightning as L
import pytest
import torch

import qwenvl.cli.train as train_cli
from qwenvl.cli.train import PREEMPTED_EXIT, train

SMALL = [
    "stage=warmup",
    "stage.image_size=224",
    "callbacks=default",  # ModelCheckpoint's last.ckpt beside PreemptionCheckpoint's
    "callbacks.progress=null",
    "callbacks.throughput=null",
    "callbacks.benchmark_validation=null",
    "checkpoint_every=50",  # no periodic save before the signal
    "data.train.size=40",
    "data.val.size=2",
]


class TermAtBatch(L.Callback):
    """Sends this process SIGTERM as batch number `at` (counted over the whole run) begins."""

    def __init__(self, at: int):
        self.at, self.seen = at, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.seen == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        self.seen += 1


def _term_at_batch(monkeypatch, at: int) -> None:
    """train() builds its trainer with a TermAtBatch callback added (first, before the others)."""
    build = train_cli.build

    def with_signal(cfg):
        module, datamodule, trainer = build(cfg)
        trainer.callbacks.insert(0, TermAtBatch(at))
        return module, datamodule, trainer

    monkeypatch.setattr(train_cli, "build", with_signal)


def _ckpt(path):
    return torch.load(path, weights_only=True, map_location="cpu")


def _preempt(monkeypatch, cfg, at: int) -> int:
    """Run `cfg` with SIGTERM as batch `at` begins; returns the exit code train() stopped with."""
    _term_at_batch(monkeypatch, at)
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    monkeypatch.undo()
    return stopped.value.code


def test_sigterm_exits_143_and_the_resumed_run_ends_in_last_ckpt(tmp_path, compose_train, monkeypatch):
    out = tmp_path / "run"
    assert _preempt(monkeypatch, compose_train(out, *SMALL, "max_steps=4"), at=1) == PREEMPTED_EXIT
    assert _ckpt(out / "checkpoints" / "last.ckpt")["global_step"] == 2  # saved at the signal's step

    metrics = train(compose_train(out, *SMALL, "max_steps=4", "ckpt_path=last"))
    # ModelCheckpoint's final save replaces PreemptionCheckpoint's file (not a last-v1.ckpt beside it)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]
    assert metrics["checkpoint"] == str(out / "checkpoints" / "last.ckpt")
    assert _ckpt(metrics["checkpoint"])["global_step"] == 4


def test_sigterm_mid_accumulation_saves_after_the_step_and_resumes_exactly(
    tmp_path, compose_train, monkeypatch
):
    steps = ["max_steps=3", "trainer.accumulate_grad_batches=2"]
    train(compose_train(tmp_path / "straight", *SMALL, *steps))
    out = tmp_path / "stopped"
    # batch 2 opens step 2: the save must wait for batch 3, which completes it
    assert _preempt(monkeypatch, compose_train(out, *SMALL, *steps), at=2) == PREEMPTED_EXIT
    saved = _ckpt(out / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 2
    progress = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    assert progress["total"]["processed"] == 4  # batches 0-3: steps 1 and 2, whole

    train(compose_train(out, *SMALL, *steps, "ckpt_path=last"))
    a, b = (_ckpt(d / "checkpoints" / "last.ckpt") for d in (tmp_path / "straight", out))
    assert a["global_step"] == b["global_step"] == 3
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
