"""A shuffling, rank-sharding sampler whose position can be restored for exact resume."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ResumableSampler(Sampler[int]):
    """Epoch `e` visits a permutation drawn from `seed + e`, split across ranks; `skip(n)` starts n in.

    It shards by itself (pad by repetition to a multiple of the world size, then rank r takes every
    world-th item from r), so the trainers run with `use_distributed_sampler: false`: a wrapping
    DistributedSampler would freeze the sequence and break `skip`. Lightning calls `set_epoch`
    before each epoch; on resume `resumable_loader` calls `skip` with the samples this rank had
    already consumed in the interrupted epoch.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, n: int) -> None:
        self._skip = n

    def __iter__(self):
        rank, world = _rank_world()
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        total = math.ceil(self.size / world) * world
        order += order[: total - self.size]  # every rank gets the same number of batches
        mine = order[rank:total:world]
        start, self._skip = self._skip, 0  # a skip applies to one pass only
        return iter(mine[start:])

    def __len__(self) -> int:
        return math.ceil(self.size / _rank_world()[1])


def resumable_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    seed: int,
    shuffle: bool,
    collate_fn=None,
    skip: int = 0,
) -> DataLoader:
    """A DataLoader in ResumableSampler order, its first pass starting `skip` samples in (this
    rank's samples an interrupted epoch had consumed; none when that is a whole epoch).

    The skip is set here, before any iterator exists: with `num_workers > 0` creating the iterator
    already draws the sampler's order for the workers, so a skip set later would come too late.
    """
    sampler = ResumableSampler(len(dataset), seed, shuffle)  # shards across ranks itself
    if 0 < skip < len(sampler):
        sampler.skip(skip)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        persistent_workers=num_workers > 0,
    )
