"""A resumed run goes on logging to the W&B run it was logging to.

WandbLogger starts a new W&B run unless it is given the old one's id, so a run resumed with
`ckpt_path=last` would appear as two runs, its curves cut at the interruption. The id is read from
the run's own folder: W&B keeps each run in `<save_dir>/wandb/[offline-]run-<YYYYMMDD_HHMMSS>-<id>`.
Nothing is invented from the path: two machines may use the same run directory name, and a
made-up id would merge their runs when synced.

Only online runs (`logger.wandb.offline=false`) are continued. W&B does not resume offline runs
(this wandb ignores `resume` offline), and syncing two offline folders of one id can keep one
part and drop the other; a resumed offline run stays a W&B run of its own, its steps going on
from the checkpoint's, so both parts sync whole.
"""

from __future__ import annotations

import re
from pathlib import Path

WANDB_TARGET = "lightning.pytorch.loggers.WandbLogger"


# `[offline-]run-<time>-<id>`, and `-<n>` after it when a run of that id started in the same second
RUN_DIR = re.compile(r"(?:offline-)?run-(\d{8}_\d{6})-([A-Za-z0-9]+)(?:-(\d+))?")


def previous_run_id(save_dir: str | Path) -> str | None:
    """The id of the newest W&B run under `save_dir/wandb`, or None when there is none."""
    runs = []
    for folder in (Path(save_dir) / "wandb").glob("*run-*"):
        if folder.is_dir() and (m := RUN_DIR.fullmatch(folder.name)):
            runs.append((m.group(1), int(m.group(3) or 0), m.group(2)))
    return max(runs)[2] if runs else None


def resume_kwargs(logger_cfg, resuming: bool) -> dict:
    """Extra arguments for instantiating one logger config: the old run's id (and W&B's
    `resume="allow"`) when an online W&B logger resumes a run that logged before; {} otherwise, or
    when the config names its own `id`."""
    if not resuming or logger_cfg.get("_target_") != WANDB_TARGET or logger_cfg.get("id"):
        return {}
    if logger_cfg.get("offline", False):
        return {}
    run_id = previous_run_id(logger_cfg.get("save_dir") or ".")
    return {"id": run_id, "resume": "allow"} if run_id else {}
