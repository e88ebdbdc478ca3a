"""Weighted mixtures of datasets for stage 2: sampling follows the configured weights."""

from __future__ import annotations

import random
from collections.abc import Sequence

from torch.utils.data import Dataset


class Mixture(Dataset):
    """`size` indices, each mapped deterministically (by `seed`) to a dataset drawn with `weights`.

    Within a dataset, items are visited in a seeded random order, cycling when exhausted, so a
    small dataset in a large mixture is repeated rather than over-weighted.
    """

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float], size: int, seed: int = 0):
        if len(datasets) != len(weights) or not datasets:
            raise ValueError(
                f"mixture needs one weight per dataset: {len(datasets)} datasets, {len(weights)} weights"
            )
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {list(weights)}")
        self.datasets, self.size = list(datasets), size
        rng = random.Random(seed)
        choice = rng.choices(range(len(datasets)), weights=weights, k=size)
        orders = []
        for d in datasets:
            order = list(range(len(d)))
            rng.shuffle(order)
            orders.append(order)
        counters = [0] * len(datasets)
        self.index: list[tuple[int, int]] = []
        for k in choice:
            if not orders[k]:
                raise ValueError(f"mixture dataset {k} is empty")
            self.index.append((k, orders[k][counters[k] % len(orders[k])]))
            counters[k] += 1

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        k, j = self.index[i]
        return self.datasets[k][j]
