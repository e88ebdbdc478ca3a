"""Throughput logged during training: tokens/s, samples/s and, on a known GPU, MFU."""

from __future__ import annotations

import time

import lightning as L
import torch

from qwenvl.training.flops import model_step_flops


class Throughput(L.Callback):
    """Logs `perf/tokens_per_s` (real LLM positions, image tokens included, padding not),
    `perf/samples_per_s` and, on CUDA devices with a known bf16 peak, `perf/mfu` = model FLOPs per
    second / peak. All three are this rank's: its batch, its step time, one GPU's peak.

    The FLOP count is `qwenvl.training.flops.model_step_flops`, over the batch's own images.
    """

    def __init__(self, peak_tflops: float | None = None):
        self.peak_tflops = peak_tflops
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()  # time the step, not the queue
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        dt = max(time.perf_counter() - self._t0, 1e-9)
        if "input_ids" not in batch:  # an encoder-only stage (`objects`): pictures, no tokens
            n = len(batch["pixel_values"])
            pl_module.log("perf/samples_per_s", n / dt, batch_size=n)
            return
        rows, seq = batch["input_ids"].shape
        samples = len(batch["tasks"])
        pl_module.log("perf/tokens_per_s", real_tokens(batch) / dt, batch_size=samples)
        pl_module.log("perf/samples_per_s", samples / dt, batch_size=samples)
        peak = self.peak_tflops or _peak(pl_module.device)
        if peak:
            supervised = int((batch["labels"][:, 1:] != -100).sum()) // max(1, rows)
            flops = model_step_flops(
                pl_module.model, rows, seq, supervised, pl_module.stage.trainable, images=images_in(batch)
            ).total
            # No division by the world size: the FLOPs and the step time are this rank's (its own
            # batch through the whole model, under DDP and FSDP alike) and the peak is one GPU's.
            pl_module.log("perf/mfu", flops / dt / (peak * 1e12), batch_size=samples)


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


def _peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    from qwenvl.cli.bench import peak_tflops_for

    return peak_tflops_for(torch.cuda.get_device_name(device))
