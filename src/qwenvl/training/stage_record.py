"""What a pipeline stage has done so far: `<stage dir>/stage.json`, so that an interrupted pipeline
picks up where it stopped instead of training its finished stages again.

    {"stage": "multitask", "overrides": [...], "status": "training" | "trained" | "done", "metrics": {...}}

`training`: the stage started (its `checkpoints/last.ckpt`, if any, is where to resume);
`trained`: training ended, the after-stage measurements did not; `done`: nothing left to do. The
overrides the stage was composed with are kept, and a rerun that asks for different ones is
refused: reusing a stage trained with other settings would mix two experiments in one summary.
"""

from __future__ import annotations

import json
from pathlib import Path

from qwenvl.atomic import write_text

RECORD = "stage.json"
STATUSES = ("training", "trained", "done")


class StageMismatch(ValueError):
    """The run directory holds this stage trained with other overrides."""


def read_record(stage_dir: Path, stage: str, overrides: list[str]) -> dict | None:
    """The stage's record, or None when it never started here.

    Raises StageMismatch when the record is for another stage or other overrides, and ValueError
    (naming the file) when the file is not a record.
    """
    path = Path(stage_dir) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a stage record ({e}); delete it to train this stage again") from e
    if not isinstance(record, dict) or record.get("status") not in STATUSES:
        raise ValueError(f"{path}: not a stage record (status must be one of {STATUSES})")
    if record.get("stage") != stage or record.get("overrides") != list(overrides):
        theirs, ours = set(record.get("overrides") or []), set(overrides)
        raise StageMismatch(
            f"{path}: this run directory holds stage {record.get('stage')!r} trained with other settings "
            f"(only there: {sorted(theirs - ours)}; only in this run: {sorted(ours - theirs)}). "
            "Resume with the same overrides, or give the pipeline a new hydra.run.dir."
        )
    return record


def write_record(
    stage_dir: Path, stage: str, overrides: list[str], status: str, metrics: dict | None = None
) -> None:
    """Replace the record atomically (a kill never leaves half a file)."""
    if status not in STATUSES:
        raise ValueError(f"stage status must be one of {STATUSES}, got {status!r}")
    record = {"stage": stage, "overrides": list(overrides), "status": status, "metrics": metrics or {}}
    write_text(Path(stage_dir) / RECORD, json.dumps(record, indent=2))
