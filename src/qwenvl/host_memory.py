"""A model that cannot fit in this machine's memory is refused before it is built.

Every process builds the whole model in float32 on the CPU before it is sharded or moved to a GPU
(under FSDP with `parallel.rank0_init`, rank 0 alone), and a CPU run keeps it there, with
gradients and AdamW's two moments. A config too big for the
machine (`experiment=qwen_vl_stage1` on a laptop: 9.6 B parameters) would otherwise be ended by
the kernel's out-of-memory killer part-way through the build, with no message at all. The count
is exact and costs no memory: the model is built on the meta device, no checkpoint read (a
pretrained LLM's shape comes from its config.json).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from hydra.utils import instantiate

BYTES_PER_PARAM = 4  # float32 weights (bf16 autocast keeps float32 masters)
BYTES_PER_TRAINED_PARAM = 4 + 8  # + the float32 gradient and AdamW's two moments


def available_host_memory() -> int | None:
    """MemAvailable of a Linux host in bytes; None where unknown (then nothing is checked)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts KiB
    except OSError:
        pass
    return None


def count_parameters(encoder: dict, adapter: dict, llm: dict, stage, tokenizer) -> tuple[int, int]:
    """(all, trained) parameters of the model these configs (Hydra nodes with `_target_`) build at
    `stage`'s resolution and freezing, counted on the meta device."""
    from qwenvl.models import QwenVLModel
    from qwenvl.training.stages import apply_freezing

    enc, ada, lm = instantiate(encoder), instantiate(adapter), instantiate(llm)
    enc.image_size, enc.checkpoint = stage.image_size, None  # the shape alone: nothing loaded
    with torch.device("meta"):  # a pretrained LLM: its checkpoint's shape (llm.build_llm)
        model = QwenVLModel.from_config(enc, ada, lm, tokenizer)
    apply_freezing(model, stage)
    return model.num_parameters(), model.num_parameters(trainable_only=True)


def host_bytes_needed(
    total: int, trained: int, processes: int, on_cpu: bool, sharded: bool = False, rank0_init: bool = False
) -> int:
    """Bytes the model takes in host memory across this machine's `processes` (activations aside).

    Each process builds the whole model in float32; a CPU run also keeps the weights' gradients and
    AdamW state there. Under FSDP (`sharded`) the ranks keep shards, together one model's worth;
    with `rank0_init` only rank 0 builds the whole model, and holds it while the shards fill.
    """
    whole = total * BYTES_PER_PARAM
    if not sharded:
        return (whole + (trained * BYTES_PER_TRAINED_PARAM if on_cpu else 0)) * processes
    keep = whole + trained * BYTES_PER_TRAINED_PARAM if on_cpu else 0  # the shards, all ranks together
    if rank0_init:
        return whole + keep
    return max(whole * processes, keep)  # every rank builds a whole model, then keeps its shards


def check_host_memory(
    total: int,
    trained: int,
    processes: int,
    on_cpu: bool,
    available: int | None,
    sharded: bool = False,
    rank0_init: bool = False,
) -> None:
    """Raise MemoryError naming the sizes when a run's model cannot fit in `available` bytes."""
    held = (
        "weights, gradients and AdamW state" if on_cpu else "float32 weights (built before the GPU gets them)"
    )
    plural = "es" if processes > 1 else ""
    hint = "parallel.rank0_init=true (one whole model per machine), " if sharded and not rank0_init else ""
    refuse_if_too_big(
        host_bytes_needed(total, trained, processes, on_cpu, sharded, rank0_init),
        available,
        f"the model has {total / 1e9:.2f} B parameters ({trained / 1e9:.2f} B trained): its {held} need",
        f"for {processes} process{plural} on this machine",
        "Use a smaller model (the tiny defaults: drop the encoder=/llm= overrides or the experiment that "
        f"sets them), {hint}fewer trainer.devices per machine, or a machine with more memory",
    )


def refuse_if_too_big(need: int, available: int | None, what: str, where: str, advice: str) -> None:
    """MemoryError "<what> <need> GiB of host memory <where>, and <available> GiB is available.
    <advice>" when `need` bytes exceed `available` (None: unknown, nothing checked)."""
    if available is None or need <= available:
        return
    gib = 2**30
    raise MemoryError(
        f"{what} {need / gib:.1f} GiB of host memory {where}, and {available / gib:.1f} GiB is available. "
        f"{advice}"
    )


def is_local_leader() -> bool:
    """The one process per machine that checks (torchrun's LOCAL_RANK, srun's SLURM_LOCALID; a
    process Lightning has yet to launch the others from has neither)."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))) == 0
