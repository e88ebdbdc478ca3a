"""OmegaConf resolvers the configs use (registered once, on import of qwenvl.paths)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from omegaconf import OmegaConf


def _div(a, b) -> int:
    """Gradient accumulation = global batch / (per-device batch x devices x nodes), exact."""
    if int(a) % int(b):
        raise ValueError(f"global batch {a} is not a multiple of the per-step batch {b}")
    return int(a) // int(b)


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
    "qwenvl_div": _div,
    "qwenvl_mul": lambda *xs: math.prod(int(x) for x in xs),
    "parent": lambda p: str(Path(p).parent),
}.items():
    OmegaConf.register_new_resolver(name, fn, replace=True)
