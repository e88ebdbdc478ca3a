"""A DataLoader over a stream (WebDataset shards) whose first pass after a resume starts where the
interrupted epoch stopped.

A map-style dataset resumes by starting its sampler further in (`sampler.resumable_loader`). A
stream cannot seek, so the first pass after a resume reads the batches the interrupted epoch had
trained on and drops them. Dropping whole batches from the loader's own iterator is exact whatever
the number of workers (the loader takes batches from them in a fixed order) and whatever was
skipped as bad on the way; its cost is the data loading of those batches, with no training.
"""

from __future__ import annotations

import logging

from torch.utils.data import DataLoader, IterableDataset

log = logging.getLogger(__name__)


class ResumableStreamLoader(DataLoader):
    """DataLoader whose next pass drops its first `skip_batches` batches; later passes read the
    stream from its start. `skip_batches`: the batches this rank trained on in the interrupted
    epoch (0 outside a resume)."""

    def __init__(self, dataset: IterableDataset, *, skip_batches: int = 0, **kwargs):
        super().__init__(dataset, **kwargs)
        self.skip_batches = skip_batches

    def __iter__(self):
        batches = super().__iter__()
        skip, self.skip_batches = self.skip_batches, 0  # the first pass after the resume only
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
