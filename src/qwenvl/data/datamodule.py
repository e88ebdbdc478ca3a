"""QwenVLDataModule: datasets from config -> guarded, collated DataLoaders for one stage."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset, IterableDataset

from qwenvl.data.collate import Collator
from qwenvl.data.robust import Guarded, GuardedStream
from qwenvl.data.sample import Message, Sample
from qwenvl.data.sampler import ResumableSampler, resumable_loader
from qwenvl.data.stream_resume import ResumableStreamLoader, StreamResume
from qwenvl.processor import QwenVLProcessor


class QwenVLDataModule(L.LightningDataModule):
    """`train`/`val` are Datasets of Samples (built by Hydra from `conf/data/*.yaml`).

    The processor is injected by the training entry point, because image size and tokens per
    image belong to the model. Batches are padded, or packed to `max_seq_len` with `pack=True`.
    """

    def __init__(
        self,
        train: Dataset,
        val: Dataset | None = None,
        processor: QwenVLProcessor | None = None,
        fmt: str = "plain",
        batch_size: int = 8,
        num_workers: int = 0,
        max_seq_len: int = 2048,
        pack: bool = False,
        on_error: str = "skip",
        seed: int = 0,
        text_only: bool = False,
        split: str | None = None,  # read by the dataset configs (`${data.split}`), not used here
    ):
        super().__init__()
        self.train_set, self.val_set, self.processor = train, val, processor
        self.fmt, self.batch_size, self.num_workers = fmt, batch_size, num_workers
        self.max_seq_len, self.pack, self.on_error, self.seed = max_seq_len, pack, on_error, seed
        self.text_only = text_only
        self.train_sampler: ResumableSampler | None = None
        self.resume_samples = 0  # set on resume: this rank's samples the interrupted epoch consumed
        self.resume_stream: dict | None = None  # set on resume: where a stream's workers stood
        self._guards: list[Guarded] = []

    def skipped(self) -> dict[str, int]:
        """Bad samples skipped so far, by reason: at loading (format loaders' `stats`) and in collation.

        With `num_workers > 0` the collation counts live in the worker processes; each skip is
        still logged there with its file, record and reason.
        """
        counts: dict[str, int] = {}
        for g in self._guards:
            for reason, n in g.skipped.items():
                counts[reason] = counts.get(reason, 0) + n
        for ds in (self.train_set, self.val_set):
            for key, n in (getattr(ds, "stats", None) or {}).items():
                if key.startswith("skipped/") and n:
                    counts[key.removeprefix("skipped/")] = counts.get(key.removeprefix("skipped/"), 0) + n
        return counts

    def collator(self, pack: bool | None = None) -> Collator:
        if self.processor is None:
            raise ValueError(
                "QwenVLDataModule needs a processor (the training entry point passes the model's)"
            )
        return Collator(self.processor, self.fmt, self.max_seq_len, self.pack if pack is None else pack)

    def _loader(self, dataset: Dataset, shuffle: bool, pack: bool | None = None) -> DataLoader:
        collator = self.collator(pack)
        encode = (lambda s: collator.encode(without_images(s))) if self.text_only else collator.encode
        skip, resume = 0, None
        if shuffle:  # the training loader: a resumed epoch's first pass starts where it stopped
            skip, self.resume_samples = self.resume_samples, 0
            resume, self.resume_stream = StreamResume.from_record(self.resume_stream), None
        if isinstance(dataset, IterableDataset):  # streamed shards: no sampler; start where it stood
            stream = GuardedStream(dataset, encode, self.on_error)
            self._guards.append(stream.guard)
            return ResumableStreamLoader(
                stream,
                skip_batches=skip // self.batch_size,
                resume=resume,
                batch_size=self.batch_size,
                num_workers=self.num_workers,
                collate_fn=collator,
            )
        guarded = Guarded(dataset, encode, self.on_error)
        self._guards.append(guarded)
        loader = resumable_loader(
            guarded, self.batch_size, self.num_workers, self.seed, shuffle, collator, skip=skip
        )
        if shuffle:
            self.train_sampler = loader.sampler
        return loader

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:
            return []
        return self._loader(self.val_set, shuffle=False, pack=False)  # per-sample losses need padding


def without_images(sample: Sample) -> Sample:
    """The same sample with its pictures removed: text for warming up a randomly initialized LLM."""
    messages = [Message(m.role, m.content, 0) for m in sample.messages]
    return Sample(
        sample.task, messages, [], sample.answers, sample.boxes, sample.lang, sample.id, sample.meta
    )
