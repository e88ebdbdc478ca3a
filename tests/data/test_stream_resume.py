"""A streamed epoch resumed mid-way goes on with the batches the interrupted one had not reached."""

import pytest
import torch
from test_formats import _write_shards  # the shards the format tests write (same folder)
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from qwenvl.data.datamodule import QwenVLDataModule
from qwenvl.data.formats.webdataset_pairs import WebDatasetPairs
from qwenvl.data.robust import GuardedStream
from qwenvl.data.stream_resume import ResumableStreamLoader


class Numbers(IterableDataset):
    """0..n-1, split across DataLoader workers as shards are (worker w reads w, w+W, ...)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        w, workers = (info.id, info.num_workers) if info else (0, 1)
        return iter(range(w, self.n, workers))


def _encode(i):
    if i % 5 == 3:  # a bad sample: skipped by the guard, so batches do not line up with numbers
        raise ValueError(f"bad sample {i}")
    return i


def _batches(loader):
    return [b.tolist() for b in loader]


@pytest.mark.parametrize("workers", [0, 2])
def test_the_first_pass_after_a_resume_starts_where_the_interrupted_one_stopped(workers, caplog):
    def loader(**kw):
        stream = GuardedStream(Numbers(23), _encode)
        return kw.pop("cls", DataLoader)(stream, batch_size=3, num_workers=workers, **kw)

    full = _batches(loader())
    assert len(full) >= 6 and sum(len(b) for b in full) == 23 - 4  # 3, 8, 13 and 18 skipped
    resumed = loader(cls=ResumableStreamLoader, skip_batches=4)
    with caplog.at_level("INFO", logger="qwenvl.data.stream_resume"):
        assert _batches(resumed) == full[4:]
    assert "reading past the 4 batches" in caplog.text and "3 of 4 batches read past" in caplog.text
    assert _batches(resumed) == full  # the next epoch reads the stream from its start
    past_the_end = loader(cls=ResumableStreamLoader, skip_batches=len(full) + 2)
    assert _batches(past_the_end) == full  # shards changed under the run: the epoch starts over


def test_the_data_module_reads_past_what_a_resumed_epoch_had_trained_on(proc, tmp_path):
    _write_shards(tmp_path, n_shards=2, per_shard=5)

    def module():
        pairs = WebDatasetPairs(tmp_path, "pairs-{000000..000001}.tar")
        return QwenVLDataModule(pairs, processor=proc, batch_size=2)

    full = [b["input_ids"] for b in module().train_dataloader()]
    dm = module()
    dm.resume_samples = 3 * 2  # what `on_load_checkpoint` sets: 3 batches of 2 trained on
    resumed = [b["input_ids"] for b in dm.train_dataloader()]
    assert len(resumed) == len(full) - 3
    assert all(torch.equal(a, b) for a, b in zip(resumed, full[3:], strict=True))


def _positions_after(batches) -> dict:
    """What the training module keeps after training on `batches` (stream_positions.record)."""
    from qwenvl.training.stream_positions import record

    state: dict = {}
    for b in batches:
        state = record(state, b["stream_position"], epoch=0)
    return state


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_starts_each_worker_where_it_stood_without_decoding_what_came_before(
    proc, tmp_path, workers, caplog
):
    _write_shards(tmp_path, n_shards=4, per_shard=5, bad=True)  # 3 bad samples at each shard's end

    def module():
        pairs = WebDatasetPairs(tmp_path, "pairs-{000000..000003}.tar", max_pixels=1000)
        return QwenVLDataModule(pairs, processor=proc, batch_size=2, num_workers=workers)

    full = list(module().train_dataloader())
    assert len(full) == 10 and all("stream_position" in b for b in full)  # 20 good samples
    for k in (1, 4, 7):  # mid-shard, at a shard's end, in each worker's second shard; odd k: roles turn
        dm = module()
        dm.resume_stream = _positions_after(full[:k])
        with caplog.at_level("INFO", logger="qwenvl.data.stream_resume"):
            resumed = list(dm.train_dataloader())
        assert "where each worker stopped" in caplog.text
        assert [b["input_ids"].tolist() for b in resumed] == [b["input_ids"].tolist() for b in full[k:]]
        assert [b["stream_position"] for b in resumed] == [b["stream_position"] for b in full[k:]]
        if not workers:  # the counts of this process: only the samples after the positions decoded
            assert dm.train_set.stats["samples"] == sum(len(b["tasks"]) for b in full[k:])
        assert len(list(dm.train_dataloader())) == len(full)  # the next epoch: every shard again


def test_positions_from_another_worker_count_fall_back_to_reading_past_the_batches(proc, tmp_path, caplog):
    _write_shards(tmp_path, n_shards=4, per_shard=5)

    def module(workers):
        pairs = WebDatasetPairs(tmp_path, "pairs-{000000..000003}.tar")
        return QwenVLDataModule(pairs, processor=proc, batch_size=2, num_workers=workers)

    two = list(module(2).train_dataloader())
    one = [b["input_ids"].tolist() for b in module(0).train_dataloader()]
    dm = module(0)
    dm.resume_stream, dm.resume_samples = _positions_after(two[:3]), 3 * 2
    with caplog.at_level("INFO", logger="qwenvl.data.stream_resume"):
        assert [b["input_ids"].tolist() for b in dm.train_dataloader()] == one[3:]
    assert "read its stream with 2 workers and this one with 1" in caplog.text


def test_positions_on_shards_that_changed_fall_back_to_reading_past_the_batches(proc, tmp_path, caplog):
    _write_shards(tmp_path, n_shards=4, per_shard=5)

    def module(pattern):
        return QwenVLDataModule(WebDatasetPairs(tmp_path, pattern), processor=proc, batch_size=2)

    before = list(module("pairs-{000000..000003}.tar").train_dataloader())
    after = [b["input_ids"].tolist() for b in module("pairs-{000001..000003}.tar").train_dataloader()]
    dm = module("pairs-{000001..000003}.tar")  # the first shard dropped from the list since
    dm.resume_stream, dm.resume_samples = _positions_after(before[:3]), 3 * 2
    with caplog.at_level("INFO", logger="qwenvl.data.stream_resume"):
        assert [b["input_ids"].tolist() for b in dm.train_dataloader()] == after[3:]
    assert "shard 1 was pairs-000001.tar and is now pairs-000002.tar" in caplog.text
