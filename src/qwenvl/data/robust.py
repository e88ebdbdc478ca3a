"""Bad input never kills a long run: a sample that fails to load is skipped, counted and logged."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from torch.utils.data import Dataset, IterableDataset

from qwenvl.data.stream_resume import StreamItem

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A bad record or file; the message names the file, the record and the reason."""


class Guarded(Dataset):
    """Applies `fn` (e.g. Collator.encode) to each item; on failure returns None and counts the reason.

    `on_error="raise"` re-raises instead, with the sample's id and source in the message.
    """

    def __init__(self, dataset: Dataset, fn: Callable, on_error: str = "skip"):
        if on_error not in ("skip", "raise"):
            raise ValueError(f"data.on_error must be 'skip' or 'raise', got {on_error!r}")
        self.dataset, self.fn, self.on_error = dataset, fn, on_error
        self.skipped: Counter = Counter()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        sample = None
        try:
            sample = self.dataset[i]
            return self.fn(sample)
        except Exception as e:  # one bad sample must not end a run; every skip is counted and logged
            where = getattr(sample, "id", None) or f"index {i}"
            source = getattr(sample, "meta", {}).get("source", type(self.dataset).__name__)
            message = f"{source}, record {where}: {type(e).__name__}: {e}"
            if self.on_error == "raise":
                raise DataError(message) from e
            self.skipped[type(e).__name__] += 1
            log.warning("skipped bad sample (%s)", message)
            return None


class GuardedStream(IterableDataset):
    """`Guarded` for streamed datasets (WebDataset shards): bad samples are counted and skipped."""

    def __init__(self, dataset: IterableDataset, fn: Callable, on_error: str = "skip"):
        self.guard = Guarded(dataset, fn, on_error)

    @property
    def seekable(self) -> bool:
        """Whether the stream says where it stands and can start there (`stream_resume`)."""
        return hasattr(self.guard.dataset, "resume_at")

    def resume_at(self, resume) -> None:
        self.guard.dataset.resume_at(resume)

    def moved_shards(self, resume) -> str | None:
        return self.guard.dataset.moved_shards(resume)

    def __iter__(self):
        g = self.guard
        for i, sample in enumerate(g.dataset):
            try:
                position = getattr(sample, "meta", {}).get("stream_position")
                encoded = g.fn(sample)
                # The position travels with the sample to its batch (Collator), and so to training.
                yield encoded if position is None else StreamItem(encoded, position)
            except Exception as e:  # one bad sample must not end a run
                # getattr: the message must not fail on an item that is no Sample at all
                source = getattr(sample, "meta", {}).get("source", "stream")
                message = f"{source}, record {getattr(sample, 'id', None) or i}: {type(e).__name__}: {e}"
                if g.on_error == "raise":
                    raise DataError(message) from e
                g.skipped[type(e).__name__] += 1
                log.warning("skipped bad sample (%s)", message)
