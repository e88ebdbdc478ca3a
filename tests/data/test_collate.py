import pytest
import torch

from qwenvl.data.collate import Collator
from qwenvl.data.mixture import Mixture
from qwenvl.data.robust import DataError, Guarded
from qwenvl.data.synthetic import SyntheticWorld
from qwenvl.training.module import sample_losses


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(seed=3, split="train", size=200, image_size=224)


def test_only_the_answer_is_supervised(proc, world):
    sample = world.make(0, task="vqa", lang="en")
    enc = Collator(proc).encode(sample)
    supervised = [t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != -100]
    assert proc.tokenizer.decode(supervised) == sample.answers[0] + "<|endoftext|>"


def test_packing_isolates_samples(model, proc, world):
    samples = [world[i] for i in range(6)]
    padded = Collator(proc, pack=False)(samples)
    packed = Collator(proc, pack=True, max_seq_len=2048)(samples)
    assert packed["input_ids"].shape[0] < len(samples)  # several samples share a row
    assert 0 < float(packed["packing_efficiency"]) <= 1
    with torch.no_grad():
        keys = ("input_ids", "attention_mask", "pixel_values", "labels")
        a = model(**{k: padded[k] for k in keys}).token_loss
        b = model(**{k: packed[k] for k in (*keys[:1], *keys[2:], "position_ids")}).token_loss
    la = sample_losses(a, padded["labels"], padded["sample_index"], len(samples))
    lb = sample_losses(b, packed["labels"], packed["sample_index"], len(samples))
    assert torch.allclose(la, lb, atol=1e-4), (la, lb)


def test_packing_without_isolation_would_differ(model, proc, world):
    """Control: the same packed row with one causal mask over all samples changes the losses."""
    samples = [world[i] for i in range(3)]
    packed = Collator(proc, pack=True, max_seq_len=4096)(samples)
    assert packed["input_ids"].shape[0] == 1
    with torch.no_grad():
        iso = model(
            packed["input_ids"], None, packed["pixel_values"], packed["labels"], packed["position_ids"]
        )
        mixed = model(
            packed["input_ids"],
            torch.ones_like(packed["input_ids"]),
            packed["pixel_values"],
            packed["labels"],
        )
    assert not torch.allclose(iso.token_loss, mixed.token_loss, atol=1e-4)


def test_truncation_never_cuts_an_image_span(proc, world):
    sample = world.make(1, task="multi_image", lang="en")
    full = Collator(proc).encode(sample)
    first_end = full.input_ids.index(proc.tokenizer.convert_tokens_to_ids("</img>"))
    enc = Collator(proc, max_seq_len=first_end + 10).encode(sample)  # inside the second span
    start, end = (proc.tokenizer.convert_tokens_to_ids(t) for t in ("<img>", "</img>"))
    assert enc.input_ids.count(start) == enc.input_ids.count(end) == 1
    assert enc.pixel_values.shape[0] == 1
    assert len(enc.input_ids) <= first_end + 10


def test_mixture_follows_weights():
    a, b = list(range(10)), [f"b{i}" for i in range(5)]
    mix = Mixture([a, b], [3, 1], size=4000, seed=0)
    share = sum(isinstance(mix[i], int) for i in range(len(mix))) / len(mix)
    assert abs(share - 0.75) < 0.03
    assert Mixture([a, b], [3, 1], size=50, seed=1).index == Mixture([a, b], [3, 1], size=50, seed=1).index
    with pytest.raises(ValueError, match="one weight per dataset"):
        Mixture([a, b], [1], size=3)


class _Broken:
    def __len__(self):
        return 3

    def __getitem__(self, i):
        if i == 1:
            raise OSError("image file is truncated")
        return i


def test_guarded_skips_counts_or_raises():
    g = Guarded(_Broken(), lambda x: x * 10)
    assert [g[i] for i in range(3)] == [0, None, 20]
    assert g.skipped["OSError"] == 1
    with pytest.raises(DataError, match="index 1.*truncated"):
        Guarded(_Broken(), lambda x: x, on_error="raise")[1]


def test_real_format_mixture_config_trains_on_exported_files(tmp_path):
    """conf/data/real_multitask.yaml over real-format files (the synthetic world, exported)."""
    from hydra import compose, initialize_config_dir

    from qwenvl.data.synthetic.export import export_all
    from qwenvl.paths import CONF_DIR

    export_all(SyntheticWorld(seed=0, split="val", size=40, image_size=224), tmp_path, 8)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            [
                f"data_root={tmp_path}",
                "data=real_multitask",
                "data.split=val",
                "stage=multitask",
                "stage.image_size=224",
                "data.train.size=24",
                "data.batch_size=4",
                "adapter.num_queries=16",
                "logger=none",
                "callbacks=none",
                f"paths.output_dir={tmp_path / 'run'}",
            ],
        )
    from qwenvl.cli.train import build

    module, datamodule, _ = build(cfg)
    tasks = [s.task for s in datamodule.train_set]
    assert {"caption", "vqa", "grounding"} <= set(tasks)
    batch = next(iter(datamodule.train_dataloader()))
    assert module(batch).loss > 0 and datamodule.skipped() == {}
