"""Replace a text file whole or not at all: a kill mid-write never leaves half a file behind.

Files that an interrupted run reads back on resume (a pipeline stage's record, a benchmark's
predictions, a run's losses) go through here.
"""

from __future__ import annotations

from pathlib import Path


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through `<path minus suffix>.tmp`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic on POSIX and Windows within one file system
    return path
