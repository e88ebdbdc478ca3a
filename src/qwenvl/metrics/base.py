"""`SampleMetric`: a torchmetrics `Metric` whose state is one record per sample, keyed by sample id.

Why: a `DistributedSampler` pads the last shard by repeating samples, and corpus-level metrics
(CIDEr's document frequencies, COCO mAP) need every sample's raw inputs in one place. So each
`update(..., ids=...)` appends `(id, payload)` records; on `compute()` the records of all processes
are gathered with `torch.distributed.all_gather_object` (pickled Python objects: works with gloo
on CPU and NCCL on GPU), de-duplicated by id (first occurrence wins), put in a canonical order,
and handed to `_compute_records`. The result is the same on 1 process and on N.

Ids are strings or ints (`1` and `"1"` are different ids) and must name identical samples: when
one id arrives twice, which copy is kept depends on arrival order. Without ids every record gets
a fresh id, so nothing is de-duplicated: pass ids whenever a sampler may repeat samples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torchmetrics import Metric

_INSTANCE_TAGS = itertools.count()
SampleId = str | int
Ids = Sequence[SampleId] | Tensor | None


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def normalize_ids(ids: Ids, n: int, counter: list[int]) -> list[Any]:
    """Validate `ids` (or invent unique ones) for a batch of `n` samples.

    Invented ids are `("auto", rank, k)` tuples: unique across processes, never equal to user ids.
    """
    if ids is None:
        start = counter[0]
        counter[0] += n
        rank = _rank()
        return [("auto", rank, start + k) for k in range(n)]
    if isinstance(ids, Tensor):
        ids = ids.tolist()
    ids = list(ids)
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} ids for {n} samples")
    out: list[Any] = []
    for i in ids:
        if not isinstance(i, str | int) and hasattr(i, "item"):  # numpy or 0-d tensor integers
            i = i.item()
        if isinstance(i, bool) or not isinstance(i, str | int):
            raise ValueError(f"sample id {i!r} must be a str or an int, not {type(i).__name__}")
        out.append(i)
    return out


def _sort_key(key: Any) -> tuple:
    # A total order over mixed ids: ints, then strings, then invented ids.
    if isinstance(key, int):
        return (0, key, "")
    if isinstance(key, str):
        return (1, 0, key)
    return (2, key[1], key[2])


def mean(values: Iterable[float]) -> float:
    """Order-independent mean (exactly rounded sum), NaN for no values."""
    values = list(values)
    return math.fsum(values) / len(values) if values else float("nan")


class SampleMetric(Metric):
    """Base class. A subclass's `update` gets keys with `self._keys(ids, n)`, validates its whole
    batch (raising ValueError naming the sample id, before any state changes, so finished work
    is never lost), then stores one picklable payload per sample with `self._extend(keys,
    payloads)`; `_compute_records(payloads)` receives the de-duplicated payloads in id order.
    All sample state lives in the `records` list."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # `MetricCollection` (compute_groups=True by default) merges metrics whose states look
        # equal, comparing list states as tensors; our records are tuples. A tag unique to each
        # instance, registered first so it is compared first, keeps every metric in its own group.
        self.add_state("instance_tag", default=torch.tensor(next(_INSTANCE_TAGS)), dist_reduce_fx="max")
        self.add_state("records", default=[], dist_reduce_fx=None)
        self._auto_id = [0]

    # -- state -------------------------------------------------------------------------------
    def _keys(self, ids: Ids, n: int) -> list[Any]:
        return normalize_ids(ids, n, self._auto_id)

    def _extend(self, keys: list[Any], payloads: list[Any]) -> None:
        self.records.extend(zip(keys, payloads, strict=True))

    def unique_payloads(self) -> list[Any]:
        """Payloads de-duplicated by id (first occurrence wins), in canonical id order."""
        seen: dict[Any, Any] = {}
        for key, payload in self.records:
            seen.setdefault(key, payload)
        return [seen[k] for k in sorted(seen, key=_sort_key)]

    def compute(self) -> Any:
        return self._compute_records(self.unique_payloads())

    def _compute_records(self, payloads: list[Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- distributed -------------------------------------------------------------------------
    def _sync_dist(self, dist_sync_fn: Callable | None = None, process_group: Any | None = None) -> None:
        # Records are Python objects (strings, tuples), which `gather_all_tensors` (the default
        # `dist_sync_fn`) cannot carry; all_gather_object pickles them, rank 0's first.
        group = process_group or self.process_group
        world = dist.get_world_size(group)
        gathered: list[list[Any] | None] = [None] * world
        dist.all_gather_object(gathered, list(self.records), group=group)
        self.records = [record for part in gathered for record in (part or [])]

    # -- torchmetrics plumbing for a list of plain Python objects ------------------------------
    def _apply(self, fn: Callable, exclude_state: Sequence[str] = "") -> torch.nn.Module:
        # `.to(device)` must not touch the records: they hold no tensors.
        return super()._apply(fn, exclude_state=("records", *exclude_state))

    def _move_list_states_to_cpu(self) -> None:
        return None

    def _copy_state_dict(self) -> dict[str, Any]:
        # Records are immutable tuples; a shallow copy is a faithful cache (and far cheaper).
        return {"instance_tag": self.instance_tag.clone(), "records": list(self.records)}


def as_tensor(value: float) -> Tensor:
    """Metric outputs are float64 scalars so that parity checks at 1e-6 are meaningful."""
    return torch.tensor(value, dtype=torch.float64)
