"""OmegaConf resolvers the configs use (registered once, on import of qwenvl.paths)."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def _accumulation(global_batch, batch_size, devices, nodes=1, accelerator="auto") -> int:
    """Micro-batches per optimizer step that reach `global_batch` samples, from `batch_size` per
    process on the run's processes (devices x nodes); 1 where no global batch is set."""
    if global_batch is None:
        return 1
    processes = _processes(devices, nodes, accelerator)
    if int(global_batch) % (int(batch_size) * processes):
        raise ValueError(
            f"global_batch={global_batch} is not a multiple of data.batch_size x processes = "
            f"{batch_size} x {processes}: gradient accumulation cannot reach it exactly"
        )
    return int(global_batch) // (int(batch_size) * processes)


def _processes(devices, nodes, accelerator="auto") -> int:
    """Processes of a run: Lightning's device spec (a count, `auto`, indices) x nodes."""
    from qwenvl.cli.launch import processes

    return processes({"devices": devices, "num_nodes": nodes, "accelerator": accelerator})


def _rank() -> int:
    """This process's global rank as a launcher set it (torchrun: RANK, srun: SLURM_PROCID); 0 when
    started alone. Lightning's own launcher gives its processes a job name of their own instead."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


for name, fn in {
    # Hydra's outputs under a launcher: rank 0 writes .hydra/, the others log beside it
    "qwenvl_rank0": lambda value: value if _rank() == 0 else None,
    "qwenvl_rank_suffix": lambda: f"_rank{_rank()}" if _rank() else "",
    "qwenvl_processes": _processes,
    "qwenvl_accumulation": _accumulation,
    "parent": lambda p: str(Path(p).parent),
}.items():
    OmegaConf.register_new_resolver(name, fn, replace=True)
