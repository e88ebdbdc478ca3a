"""A DataLoader over a stream (WebDataset shards) whose first pass after a resume starts where the
interrupted epoch stopped.

A map-style dataset resumes by starting its sampler further in (`sampler.resumable_loader`). A
stream cannot seek, but it can say where it stands: each sample of a stream that knows its
position (`WebDatasetPairs`) carries `(role, workers, shard, next member, shard name)` through
collation, the
training module keeps the position of the last batch each worker role gave it, and the checkpoint
holds them, every rank's (`StreamResume`). Resumed, each worker role starts at its shard and reads
past the members before its position without decoding them, and the roles are rotated so that the
first batch comes from the role whose turn it was: the loader takes batches from its workers in a
fixed round, so the batches are the uninterrupted run's, whatever was skipped as bad.

A stream without positions (a checkpoint from before them, another number of workers, or shards
that are not where the positions say) falls back to reading past the batches the interrupted epoch
had trained on: exact too where the stream is the same, at the cost of loading those batches
again, with no training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch.utils.data import DataLoader, IterableDataset

log = logging.getLogger(__name__)


class StreamItem(NamedTuple):
    """An encoded sample and where its stream stands after it: (role, workers, shard, next member,
    shard name)."""

    item: Any
    position: tuple[int, int, int, int, str]


@dataclass
class StreamResume:
    """Where each worker role of one rank stopped: `positions[role] = (shard, next member, shard
    name)` within the role's own shards, `last_role` the role of the last batch trained on,
    `workers` the loader's worker count (at least 1) that the roles belong to."""

    positions: dict[int, tuple[int, int, str]]
    workers: int
    last_role: int | None

    def role(self, worker: int) -> int:
        """The role worker `worker` plays: worker 0 takes the turn after `last_role`'s."""
        offset = 0 if self.last_role is None else self.last_role + 1
        return (worker + offset) % self.workers

    @classmethod
    def from_record(cls, record: dict | None) -> StreamResume | None:
        """From what the training module keeps (`positions`, `workers`, `last_role`); None if empty."""
        if not record or not record.get("positions"):
            return None
        positions = {int(r): (int(p[0]), int(p[1]), str(p[2])) for r, p in record["positions"].items()}
        return cls(positions, int(record["workers"]), record.get("last_role"))


class ResumableStreamLoader(DataLoader):
    """DataLoader whose next pass starts at `resume` (a `StreamResume`, for a dataset with
    `resume_at`), or else drops its first `skip_batches` batches; later passes read the stream from
    its start. `skip_batches`: the batches this rank trained on in the interrupted epoch (0 outside
    a resume)."""

    def __init__(
        self, dataset: IterableDataset, *, skip_batches: int = 0, resume: StreamResume | None = None, **kwargs
    ):
        super().__init__(dataset, **kwargs)
        self.skip_batches, self.resume = skip_batches, resume

    def __iter__(self):
        resume, self.resume = self.resume, None  # the first pass after the resume only
        skip, self.skip_batches = self.skip_batches, 0
        if resume is not None and self._seeks(resume):
            log.info("resuming a streamed epoch where each worker stopped: %s", resume.positions)
            self.dataset.resume_at(resume)
            batches = super().__iter__()
            if self.num_workers:  # the workers hold their copies now (without, the pass takes it)
                self.dataset.resume_at(None)
            return batches
        batches = super().__iter__()
        if not skip:
            return batches
        log.info("resuming a streamed epoch: reading past the %d batches it had trained on", skip)
        end = object()  # a collate function may return anything, None included
        every = max(1, skip // 10)  # a long skip reports as it goes (a log, not a bar: Lightning's is live)
        for dropped in range(skip):
            if dropped and dropped % every == 0:
                log.info("... %d of %d batches read past", dropped, skip)
            if next(batches, end) is end:
                log.warning(
                    "the stream ended after %d of the %d batches to skip (have its shards changed "
                    "since the interrupted run?); the epoch starts over from the first shard",
                    dropped,
                    skip,
                )
                return super().__iter__()
        return batches

    def _seeks(self, resume: StreamResume) -> bool:
        """Whether this pass can start at `resume`: a dataset that seeks, the same worker count."""
        if not getattr(self.dataset, "seekable", False):
            return False
        moved = self.dataset.moved_shards(resume)
        if moved:
            log.warning("%s since the interrupted run: reading past its batches instead", moved)
            return False
        if resume.workers != max(1, self.num_workers):
            log.warning(
                "the interrupted run read its stream with %d workers and this one with %d: reading past "
                "its batches instead of starting each worker where it stopped",
                resume.workers,
                max(1, self.num_workers),
            )
            return False
        return True
