"""FSDP2 sharding and activation checkpointing for QwenVLModel."""

from __future__ import annotations

import torch
from torch.distributed.device_mesh import DeviceMesh

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def shard_fsdp2(model, mesh: DeviceMesh, param_dtype: str | None = None) -> int:
    """`fully_shard` each encoder block and each LLM decoder layer, then the whole model.

    Per-block units let FSDP2 gather one block's parameters at a time, so peak memory holds one
    unsharded block plus the shards. `param_dtype="bf16"` computes in bf16 and reduces gradients in
    float32 (the stable choice for large data-parallel groups).
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kw = {"mesh": mesh}
    if param_dtype:
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=DTYPES[param_dtype], reduce_dtype=torch.float32)
    units = [*model.encoder.transformer.resblocks, *model.llm.model.layers]
    for unit in units:
        fully_shard(unit, **kw)
    fully_shard(model, **kw)
    return len(units) + 1


def enable_activation_checkpointing(model) -> None:
    """Recompute block activations in the backward pass: trades ~30% more compute for memory."""
    model.encoder.transformer.grad_checkpointing = True  # open_clip's own switch
    model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
