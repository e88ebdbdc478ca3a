"""Throughput through Lightning's ThroughputMonitor: real tokens only, the batch's own images, and
rolling rates and MFU that follow from the batches a real run trained on."""

import csv
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import throughput_monitor
from lightning.pytorch.loggers import CSVLogger

from qwenvl.cli.train import build
from qwenvl.data.collate import Collator
from qwenvl.data.synthetic import SyntheticWorld
from qwenvl.training import throughput
from qwenvl.training.throughput import ThroughputMonitor, items_in, samples_in, step_flops


@pytest.fixture(scope="module")
def samples():
    """Two-picture, one-picture and text-only samples: images != samples != rows."""
    world = SyntheticWorld(seed=3, split="train", size=50, image_size=224)
    return [world.make(i, task=t) for i, t in enumerate(("multi_image", "multi_image", "vqa", "text"))]


def _flop_calls(monkeypatch, batch) -> list[dict]:
    calls = []

    def fake_flops(model, rows, seq, supervised, trainable, images=None):
        calls.append({"rows": rows, "seq": seq, "images": images})
        return SimpleNamespace(total=1e12)

    monkeypatch.setattr(throughput, "model_step_flops", fake_flops)
    module = SimpleNamespace(model=None, stage=SimpleNamespace(trainable={}))
    assert step_flops(module, batch) == 1e12
    return calls


@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
def test_items_are_real_tokens_and_the_flops_count_the_batchs_images(monkeypatch, proc, samples, pack):
    lengths = [len(Collator(proc).encode(s).input_ids) for s in samples]
    batch = Collator(proc, pack=pack, max_seq_len=max(lengths) + 1)(samples)  # packed: 2+ rows
    rows, seq = batch["input_ids"].shape
    real = sum(lengths)
    assert real < rows * seq and rows > 1  # there is padding to leave out
    assert ("attention_mask" in batch) != pack  # a packed batch marks its tokens in sample_index only
    assert items_in(batch) == real
    assert samples_in(batch) == len(samples)  # a packed row holds several
    images = sum(len(s.images) for s in samples)
    assert images == batch["pixel_values"].shape[0] != rows  # 2 + 2 + 1 + 0 pictures
    assert _flop_calls(monkeypatch, batch) == [{"rows": rows, "seq": seq, "images": images}]


def test_a_batch_without_pictures_costs_no_encoder_flops(monkeypatch, proc, samples):
    batch = Collator(proc)(samples[3:])  # text only: pixel_values [0, 3, S, S]
    assert _flop_calls(monkeypatch, batch)[0]["images"] == 0


def test_an_encoder_only_batch_counts_its_pictures_and_no_language_flops():
    batch = {"pixel_values": torch.zeros(5, 3, 224, 224), "maps": torch.zeros(5, 8, 8)}
    assert samples_in(batch) == items_in(batch) == 5
    assert step_flops(SimpleNamespace(), batch) is None


class _Batches(L.Callback):
    """Each training batch's samples, tokens and model FLOPs, in order."""

    def __init__(self):
        self.seen: list[tuple[int, int, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((samples_in(batch), items_in(batch), step_flops(pl_module, batch)))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_logged_rates_and_mfu_follow_from_the_window_of_batches_trained_on(
    tmp_path, compose_train, monkeypatch, accumulate
):
    """A clock that ticks 0.5 s per reading: each logged rate is the window's counts (all but its
    first batch, as Lightning counts) over (window - 1) x 0.5 s, and MFU that over the given peak."""
    ticks = iter(0.5 * i for i in range(10_000))
    monkeypatch.setattr(throughput_monitor, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    cfg = compose_train(tmp_path, "stage=multitask", "stage.image_size=224", batch_size=3, val_size=12)
    module, datamodule, _ = build(cfg)
    window, peak_tflops = 4, 2e-3
    seen, monitor = _Batches(), ThroughputMonitor(peak_tflops=peak_tflops, window_size=window)
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=8,
        log_every_n_steps=2,
        accumulate_grad_batches=accumulate,
        val_check_interval=8 * accumulate,  # once, at the end: 4 batches of 3
        check_val_every_n_epoch=None,
        logger=logger,
        callbacks=[seen, monitor],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    with open(f"{logger.log_dir}/metrics.csv") as f:
        rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
    rated = [r for r in rows if "train/device/samples_per_sec" in r]
    assert len(seen.seen) == 8 * accumulate and rated  # micro-batches: the monitor counts each
    elapsed = 0.5 * (window - 1)
    for r in rated:
        done = int(r["train/batches"])  # batches counted so far; the window ends with the last
        assert r["train/samples"] == sum(s for s, _, _ in seen.seen[:done])
        counted = seen.seen[done - window + 1 : done]
        assert r["train/device/samples_per_sec"] == pytest.approx(sum(s for s, _, _ in counted) / elapsed)
        assert r["train/device/items_per_sec"] == pytest.approx(sum(t for _, t, _ in counted) / elapsed)
        flops = sum(f for _, _, f in counted) / elapsed
        assert r["train/device/flops_per_sec"] == pytest.approx(flops, rel=1e-6)
        assert r["train/device/mfu"] == pytest.approx(flops / (peak_tflops * 1e12), rel=1e-6)
    # logged at Lightning's logging steps only, after whole optimizer steps
    assert all(int(r["train/batches"]) % accumulate == 0 for r in rated)
    # Validation: its own window of rates, and no FLOPs (a forward pass, not a training step's)
    validated = [r for r in rows if "validate/device/samples_per_sec" in r]
    assert validated and not any(k.startswith("validate/") and "flops" in k for r in rows for k in r)


def test_the_peak_is_the_given_one_else_lightnings_and_none_on_a_cpu():
    cpu = torch.device("cpu")
    assert throughput.peak_flops(cpu, 2.0, None) == 2e12
    assert throughput.peak_flops(cpu, None, 7e12) == 7e12  # Lightning's answer on a device we do not list
    assert throughput.peak_flops(cpu, None, None) is None  # a CPU: no MFU
