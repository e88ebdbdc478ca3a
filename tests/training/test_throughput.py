"""The Throughput callback: real tokens only, the batch's own images, MFU per GPU."""

from types import SimpleNamespace

import pytest
import torch

from qwenvl.data.collate import Collator
from qwenvl.data.synthetic import SyntheticWorld
from qwenvl.training import throughput
from qwenvl.training.throughput import Throughput


@pytest.fixture(scope="module")
def samples():
    """Two-picture, one-picture and text-only samples: images != samples != rows."""
    world = SyntheticWorld(seed=3, split="train", size=50, image_size=224)
    return [world.make(i, task=t) for i, t in enumerate(("multi_image", "multi_image", "vqa", "text"))]


def _run(monkeypatch, batch, world_size=1, step_s=2.0):
    """One step of the callback over `batch`, lasting `step_s` seconds: (logged values, FLOP calls)."""
    logged, calls = {}, []

    def fake_flops(model, rows, seq, supervised, trainable, images=None):
        calls.append({"rows": rows, "seq": seq, "images": images})
        return SimpleNamespace(total=1e12)

    monkeypatch.setattr(throughput, "model_step_flops", fake_flops)
    monkeypatch.setattr(throughput.time, "perf_counter", iter([10.0, 10.0 + step_s]).__next__)
    module = SimpleNamespace(
        device=torch.device("cpu"),
        model=None,
        stage=SimpleNamespace(trainable={}),
        log=lambda key, value, **kw: logged.__setitem__(key, value),
    )
    trainer = SimpleNamespace(world_size=world_size)
    cb = Throughput(peak_tflops=100.0)
    cb.on_train_batch_start(trainer, module, batch, 0)
    cb.on_train_batch_end(trainer, module, None, batch, 0)
    return logged, calls


@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
def test_tokens_per_s_counts_real_tokens_and_the_flops_the_batchs_images(monkeypatch, proc, samples, pack):
    lengths = [len(Collator(proc).encode(s).input_ids) for s in samples]
    batch = Collator(proc, pack=pack, max_seq_len=max(lengths) + 1)(samples)  # packed: 2+ rows
    rows, seq = batch["input_ids"].shape
    real = sum(lengths)
    assert real < rows * seq and rows > 1  # there is padding to leave out
    assert ("attention_mask" in batch) != pack  # a packed batch marks its tokens in sample_index only
    logged, calls = _run(monkeypatch, batch)
    assert logged["perf/tokens_per_s"] == real / 2.0
    assert logged["perf/samples_per_s"] == len(samples) / 2.0
    images = sum(len(s.images) for s in samples)
    assert images == batch["pixel_values"].shape[0] != rows  # 2 + 2 + 1 + 0 pictures
    assert calls == [{"rows": rows, "seq": seq, "images": images}]


def test_a_batch_without_pictures_costs_no_encoder_flops(monkeypatch, proc, samples):
    batch = Collator(proc)(samples[3:])  # text only: pixel_values [0, 3, S, S]
    _, calls = _run(monkeypatch, batch)
    assert calls[0]["images"] == 0


def test_mfu_is_this_ranks_flops_per_second_over_one_gpus_peak(monkeypatch, proc, samples):
    """Each rank times its own batch through the whole model, and the peak is one GPU's: the
    world size does not enter (it would if the FLOPs were the whole world's)."""
    batch = Collator(proc)(samples)
    for world_size in (1, 4):
        logged, _ = _run(monkeypatch, batch, world_size=world_size, step_s=2.0)
        assert logged["perf/mfu"] == pytest.approx(1e12 / 2.0 / 100e12)  # 0.5 %
