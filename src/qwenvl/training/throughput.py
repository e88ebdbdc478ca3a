"""Throughput logged during training: Lightning's ThroughputMonitor fed with this model's counts.

Lightning's monitor keeps a window of cumulative counts (time, batches, samples, items, FLOPs) and
logs rolling rates under `train/` (and `validate/`) at each logging step once the window is full:
`train/device/samples_per_sec`, `train/device/items_per_sec` (tokens), `train/device/flops_per_sec`
and, where the peak is known, `train/device/mfu`; with several ranks also the world's
`train/samples_per_sec` and so on. Its clock runs from the start of training with validation
taken out, so the rates include data loading: what a run really gets. What it cannot know, this
module gives it:

- samples: a batch's samples (a packed row holds several; `tasks` lists one entry per sample);
- items: real LLM positions (image tokens included, padding not); in the encoder-only `objects`
  stage, its pictures;
- FLOPs: `qwenvl.training.flops.model_step_flops` over the batch's own rows, length, supervised
  positions and images, frozen parts counted as they run (set as the module's `flops_per_batch`,
  the attribute the monitor reads; none for validation batches, whose cost is a forward pass);
- the peak: `peak_tflops` when given, else this project's dense bf16 table for a known GPU (the
  MFU convention: model FLOPs over the bf16 peak, whatever the precision), else Lightning's value
  (none on CPU). MFU is per device: one rank's FLOPs and step time over one GPU's peak.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import ThroughputMonitor as LightningThroughputMonitor

from qwenvl.training.flops import model_step_flops


class ThroughputMonitor(LightningThroughputMonitor):
    """`lightning.pytorch.callbacks.ThroughputMonitor` with this project's samples, tokens, FLOPs
    and peak (module docstring). `window_size`: batches (micro-batches under accumulation) per
    rolling rate, at least 2; rates appear once that many batches have run."""

    def __init__(self, peak_tflops: float | None = None, window_size: int = 20):
        super().__init__(batch_size_fn=samples_in, length_fn=items_in, window_size=window_size)
        self.peak_tflops = peak_tflops

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        peak = peak_flops(trainer.strategy.root_device, self.peak_tflops, self.available_flops)
        self.available_flops = peak
        for throughput in self._throughputs.values():
            throughput.available_flops = peak

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:  # the monitor counts on rank 0 alone; elsewhere it would be waste
            pl_module.flops_per_batch = step_flops(pl_module, batch)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        pl_module.flops_per_batch = None  # a forward pass only: the training count would overstate it
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)


def samples_in(batch: dict) -> int:
    """Samples in a batch: one `tasks` entry each; pictures in an encoder-only batch."""
    if "tasks" in batch:
        return len(batch["tasks"])
    return len(batch["pixel_values"])


def items_in(batch: dict) -> int:
    """Tokens the model trains on: real LLM positions; pictures in an encoder-only batch."""
    if "input_ids" in batch:
        return real_tokens(batch)
    return int(batch["pixel_values"].shape[0])


def real_tokens(batch: dict) -> int:
    """LLM positions holding a sample's token (image tokens included), padding left out.

    A padded batch marks them in `attention_mask`; a packed one has none, and its `sample_index`
    [rows, seq] is -1 on the padding tail of each row (data/collate.py).
    """
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    if "sample_index" in batch:
        return int((batch["sample_index"] >= 0).sum())
    return batch["input_ids"].numel()


def images_in(batch: dict) -> int:
    """Images the encoder sees in this batch: `pixel_values` [N_img, 3, S, S] stacks all of them."""
    pixels = batch.get("pixel_values")
    return 0 if pixels is None else int(pixels.shape[0])


def step_flops(pl_module: L.LightningModule, batch: dict) -> float | None:
    """Model FLOPs of one training step on `batch` (qwenvl.training.flops), None for a batch
    without a language model's tokens (the encoder-only `objects` stage)."""
    if "input_ids" not in batch:
        return None
    rows, seq = batch["input_ids"].shape
    supervised = int((batch["labels"][:, 1:] != -100).sum()) // max(1, rows)
    trainable = pl_module.stage.trainable
    return model_step_flops(pl_module.model, rows, seq, supervised, trainable, images=images_in(batch)).total


def peak_flops(device: torch.device, peak_tflops: float | None, lightning_flops: float | None):
    """One device's peak in FLOP/s: the given TFLOP/s, this project's bf16 table, or Lightning's."""
    if peak_tflops:
        return peak_tflops * 1e12
    if device.type == "cuda":
        from qwenvl.cli.bench import peak_tflops_for

        known = peak_tflops_for(torch.cuda.get_device_name(device))
        if known:
            return known * 1e12
    return lightning_flops
