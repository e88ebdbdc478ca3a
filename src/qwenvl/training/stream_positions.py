"""Where each worker of a streamed training loader stood at the last batch trained: kept by the
training module, saved with every checkpoint (every rank's), handed back to the data module on a
resume (`qwenvl.data.stream_resume` says how a stream starts there)."""

from __future__ import annotations

import logging

import torch.distributed as dist

log = logging.getLogger(__name__)


def record(state: dict, position, epoch: int) -> dict:
    """`state` with a batch's `stream_position` (role, workers, shard, next member, shard name)
    taken in.

    state: {"epoch", "workers", "positions": {role: (shard, next member, shard name)},
    "last_role"}; a batch of another epoch starts it afresh (a new pass reads every shard from its
    start).
    """
    role, workers, shard, member, name = position
    role, workers = int(role), int(workers)
    if state.get("epoch") != epoch or state.get("workers") != workers:
        state = {"epoch": epoch, "workers": workers, "positions": {}, "last_role": None}
    state["positions"][role] = (int(shard), int(member), str(name))
    state["last_role"] = role
    return state


def gather(state: dict, world_size: int) -> list[dict | None]:
    """Every rank's state, in rank order. A collective: every rank calls it at every save."""
    if world_size <= 1 or not dist.is_available() or not dist.is_initialized():
        return [state or None]
    states: list = [None] * world_size
    dist.all_gather_object(states, state or None)
    return states


def for_rank(states: list | None, rank: int, world_size: int) -> dict | None:
    """This rank's saved state, if the run that saved it had as many ranks (each reads its own
    shards); else None, and the stream falls back to reading past the batches trained on."""
    if not states:
        return None
    if len(states) != world_size:
        log.warning(
            "the checkpoint's stream positions are from %d ranks and this run has %d: reading past "
            "the batches trained on instead",
            len(states),
            world_size,
        )
        return None
    state = states[rank]
    return {**state, "positions": dict(state["positions"])} if state else None
