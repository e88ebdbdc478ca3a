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


def broadcast_from_rank0(model, full: dict, buffers: dict[str, torch.Tensor | None], device) -> None:
    """Give every rank of a sharded `model` rank 0's weights: `full` (rank 0's state dict, taken
    before sharding; {} elsewhere) into each rank's shards, and the non-persistent `buffers` (such
    as the rotary table, which no state dict holds; rank 0's tensors, None elsewhere) whole. A
    collective: every rank calls it. Ranks built on the meta device get their memory here, their
    shards only, on `device`.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    def tied() -> bool:
        return model.llm.get_output_embeddings().weight is model.llm.get_input_embeddings().weight

    was_tied = tied()
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        model.to_empty(device=device)
        print(f"built on the meta device: its shards now take rank 0's weights (on {device})", flush=True)
    model.to(device)  # rank 0's shards too: a collective's tensors share a device
    if tied() != was_tied:
        raise RuntimeError("the tied input and output embeddings came apart while the model was materialized")
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full, options=options)
    own = dict(model.named_buffers())
    for name, value in buffers.items():
        source = value.to(device) if value is not None else torch.empty_like(own[name])
        dist.broadcast(source, src=0)
        own[name].copy_(source)
