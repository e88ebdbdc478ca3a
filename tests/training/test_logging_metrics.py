"""What training and validation log per task and per part: right values, no stale ones, the same
keys on every rank."""

import csv

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy

from qwenvl.cli.train import build
from qwenvl.data.sample import TASKS
from qwenvl.training.module import sample_losses, task_means, task_totals


def test_task_totals_summed_over_ranks_give_every_rank_the_same_tasks_and_means():
    # Rank 0 met only vqa, rank 1 only caption and text: per-key syncs would pair vqa with caption.
    rank0 = task_totals(torch.tensor([1.0, 3.0]), ["vqa", "vqa"])
    rank1 = task_totals(torch.tensor([2.0, 5.0, 7.0]), ["caption", "text", "caption"])
    assert rank0.shape == rank1.shape == (2, len(TASKS))  # a fixed size: one all-reduce adds them up

    def fake_all_reduce(t):  # what strategy.reduce(reduce_op="sum") leaves on each rank
        return rank0 + rank1

    means = {task: float(v) for task, v in task_means(fake_all_reduce(rank0)).items()}
    assert means == {"caption": pytest.approx(4.5), "vqa": pytest.approx(2.0), "text": pytest.approx(5.0)}
    assert list(task_means(fake_all_reduce(rank1))) == list(means)  # same keys, same order
    assert list(task_means(rank0)) == ["vqa"]  # unsummed, the ranks would disagree


def _rank(rank: int, init: str, out: str) -> None:
    """One of two gloo ranks: its own tasks' totals, summed as on_validation_epoch_end sums them."""
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        mine = [(["vqa", "vqa"], [1.0, 3.0]), (["caption", "text", "caption"], [2.0, 5.0, 7.0])][rank]
        totals = task_totals(torch.tensor(mine[1]), mine[0])
        means = task_means(DDPStrategy().reduce(totals, reduce_op="sum"))
        torch.save({t: float(v) for t, v in means.items()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_log_the_same_tasks_with_the_means_over_both(tmp_path):
    out = str(tmp_path / "means")
    mp.spawn(_rank, args=(f"file://{tmp_path / 'init'}", out), nprocs=2)
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    assert list(ranks[0]) == list(ranks[1]) == ["caption", "vqa", "text"]  # TASKS order on both
    assert ranks[0] == ranks[1] == {"caption": 4.5, "vqa": 2.0, "text": 5.0}


def _train_cfg(tmp_path, compose_train, *overrides, **sizes):
    return compose_train(tmp_path, "stage=multitask", "stage.image_size=224", *overrides, **sizes)


def test_validation_per_task_losses_equal_the_per_batch_means_weighted_by_samples(tmp_path, compose_train):
    """On one process, the values Lightning logged before (each batch's task mean, weighted by the
    task's samples in it) are what the summed totals give."""
    module, datamodule, _ = build(_train_cfg(tmp_path, compose_train, batch_size=3, val_size=9))
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    weighted, count = {}, {}
    module.eval()
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            out = module(batch)
            losses = sample_losses(
                out.token_loss, batch["labels"], batch["sample_index"], len(batch["tasks"])
            )
            for task in set(batch["tasks"]):
                values = [v for t, v in zip(batch["tasks"], losses, strict=True) if t == task]
                weighted[task] = weighted.get(task, 0.0) + float(torch.stack(values).mean()) * len(values)
                count[task] = count.get(task, 0) + len(values)
    want = {f"val/loss_{t}": weighted[t] / count[t] for t in weighted}
    got = {k: v for k, v in logged.items() if k.startswith("val/loss_")}
    assert got == pytest.approx(want, rel=1e-5)


class _TasksSeen(L.Callback):
    """The tasks of each training batch, under the optimizer step it is part of (from 0)."""

    def __init__(self):
        self.batches: list[tuple[int, list[str]]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append((trainer.global_step, list(batch["tasks"])))


def _csv_rows(logger: CSVLogger) -> list[dict[str, float]]:
    with open(f"{logger.log_dir}/metrics.csv") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_training_logs_per_task_losses_of_the_tasks_seen_and_each_parts_learning_rate(
    tmp_path, compose_train, accumulate
):
    cfg = _train_cfg(tmp_path, compose_train, "stage.lr_scale={encoder: 0.1}", batch_size=2)
    module, datamodule, _ = build(cfg)
    seen, logger, every = _TasksSeen(), CSVLogger(tmp_path, name="csv", version=""), 2
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=8,
        log_every_n_steps=every,
        accumulate_grad_batches=accumulate,
        limit_val_batches=0,
        logger=logger,
        callbacks=[seen],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    rows = _csv_rows(logger)
    lr_rows = [r for r in rows if "lr" in r]
    assert len(lr_rows) == 8 // every
    for r in lr_rows:  # stage.lr_scale.encoder=0.1: the encoder learns at a tenth of the rate
        assert r["lr/encoder"] == pytest.approx(0.1 * r["lr"])
        assert r["lr/adapter"] == r["lr/llm"] == pytest.approx(r["lr"])

    task_rows = [r for r in rows if any(k.startswith("train/loss_") for k in r)]
    assert {r["step"] for r in task_rows} <= {r["step"] for r in lr_rows}  # at Lightning's steps
    assert len(task_rows) == len(lr_rows)
    for r in task_rows:  # the tasks of the interval's batches, and no other (no stale values)
        tasks = {t for s, batch in seen.batches if r["step"] - every < s <= r["step"] for t in batch}
        assert {k.removeprefix("train/loss_") for k in r if k.startswith("train/loss_")} == tasks
