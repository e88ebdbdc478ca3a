"""OmegaConf resolvers the configs use (registered once, on import of qwenvl.paths)."""

from __future__ import annotations

import math
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


for name, fn in {
    "qwenvl_processes": _processes,
    "qwenvl_div": _div,
    "qwenvl_mul": lambda *xs: math.prod(int(x) for x in xs),
    "parent": lambda p: str(Path(p).parent),
}.items():
    OmegaConf.register_new_resolver(name, fn, replace=True)
