"""A shuffling sampler whose position can be restored, so a resumed run sees exactly the same data."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Epoch `e` visits a permutation drawn from `seed + e`; `skip(n)` starts the next pass n items in.

    Lightning calls `set_epoch` before each epoch; on resume, the training module calls `skip` with
    the number of samples the interrupted epoch had already consumed.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def skip(self, n: int) -> None:
        self._skip = n

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        start, self._skip = self._skip, 0  # a skip applies to one pass only
        return iter(order[start:])

    def __len__(self) -> int:
        return self.size
