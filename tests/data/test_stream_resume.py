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
