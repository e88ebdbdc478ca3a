"""How qwenvl-pipeline runs on several processes: one per device, started by a launcher.

Each of the pipeline's stages is a Lightning fit. Left to itself, Lightning starts the other
processes of a multi-device fit by running the whole command line again, once per fit: a pipeline
would be restarted from its first stage by every stage. So several processes come from a launcher
(`torchrun --nproc_per_node=N -m qwenvl.cli.pipeline ...`, or `srun` under SLURM), each process
runs every stage, and only global rank 0 does the rest: the image gap after each stage, the stage
records, the final evaluation and the summary. The other ranks go on to the next stage's fit,
whose first collective waits for rank 0.
"""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, ListConfig


def launched() -> bool:
    """This process is one of several a launcher started: torchrun sets LOCAL_RANK in each, srun
    runs SLURM_NTASKS tasks (a batch script's single task is no launch)."""
    return "LOCAL_RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def processes(trainer: DictConfig) -> int:
    """Processes a `trainer` config asks for: devices per node x nodes (`auto` and -1: every GPU,
    or 1 where there is none)."""
    devices = trainer.get("devices", 1)
    if devices in ("auto", -1, "-1"):
        accelerator = str(trainer.get("accelerator", "auto"))
        devices = torch.cuda.device_count() if accelerator in ("auto", "gpu", "cuda") else 1
    elif isinstance(devices, (list, tuple, ListConfig)):  # device indices
        devices = len(devices)
    elif isinstance(devices, str) and "," in devices:  # Lightning's "0,1" (and "3,": device 3)
        devices = len([d for d in devices.split(",") if d.strip()])
    return max(1, int(devices)) * int(trainer.get("num_nodes", 1) or 1)


def check_launch(trainer: DictConfig, hydra_overrides: list[str]) -> None:
    """Refuse a multi-process pipeline that Lightning would launch, and one whose processes would
    each pick their own time-stamped run directory; both with the command that works."""
    n = processes(trainer)
    if n > 1 and not launched():
        raise ValueError(
            f"the trainer asks for {n} processes; qwenvl-pipeline needs them started by a launcher, one "
            f"per device: torchrun --nproc_per_node={n} -m qwenvl.cli.pipeline ... hydra.run.dir=DIR "
            f"(or srun under SLURM). Started alone, each stage would start the whole pipeline again"
        )
    check_run_dir(trainer, hydra_overrides)


def check_run_dir(trainer: DictConfig, hydra_overrides: list[str]) -> None:
    """Processes from a launcher (qwenvl-train or qwenvl-pipeline) must be given their one run
    directory. Lightning passes it to the processes it starts itself, and a multirun's jobs (the
    submitit launcher's tasks included) get theirs from the process that launched the sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    n = processes(trainer)
    if n == 1 or not launched():
        return
    key = "hydra.run.dir"
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        if "BasicLauncher" not in str(HydraConfig.get().launcher.get("_target_", "")):
            return  # submitit and the like: the sweep's process chose every job's directory
        key = "hydra.sweep.dir"  # each process runs the whole sweep itself
    if not any(o.startswith(f"{key}=") for o in hydra_overrides):
        raise ValueError(
            f"{n} processes share one run directory (the checkpoint shards of each stage go there): "
            f"give it, {key}=DIR; the default is stamped with each process's own clock"
        )
