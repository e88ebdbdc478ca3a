"""Write a leaderboard into a Hydra sweep directory when the sweep ends.

Enable it in an evaluation config (or on the command line with `+hydra.callbacks.leaderboard=...`)::

    hydra:
      callbacks:
        leaderboard:
          _target_: qwenvl.evaluation.hydra_callback.LeaderboardCallback
          references: qwen_vl   # or null for none

After `qwenvl-eval -m adapter.num_queries=64,256`, the sweep directory then holds leaderboard.md, .csv,
.html and .png comparing the jobs' results.json files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class LeaderboardCallback(Callback):
    """On multirun end, build the leaderboard of the sweep's jobs and write it into the sweep directory."""

    def __init__(
        self,
        references: str | list[str] | None = "qwen_vl",
        benchmarks: list[str] | None = None,
        stem: str = "leaderboard",
    ) -> None:
        self.references = references
        self.benchmarks = benchmarks
        self.stem = stem

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Never raise: the jobs have already run and saved their results; a failed summary must not
        # turn the whole sweep into a failure (the table can be rebuilt with qwenvl-leaderboard).
        try:
            self._write(Path(str(config.hydra.sweep.dir)))
        except Exception:
            log.exception("leaderboard: could not build the leaderboard of this sweep (the jobs are fine)")

    def _write(self, sweep_dir: Path) -> None:
        # Imported here so that merely configuring the callback costs nothing (matplotlib is slow to load).
        from qwenvl.evaluation.leaderboard import build_leaderboard
        from qwenvl.evaluation.references import load_references
        from qwenvl.evaluation.results import ResultsError, find_results, load_results

        paths = find_results(sweep_dir) if sweep_dir.is_dir() else []
        if not paths:
            log.warning("leaderboard: no results.json under %s, nothing to write", sweep_dir)
            return
        runs = []
        for path in paths:
            # One job that crashed mid-write should not hide the others: skip it, loudly.
            try:
                runs.append(load_results(path))
            except ResultsError as e:
                log.warning("leaderboard: skipping %s", e)
        if not runs:
            log.warning("leaderboard: no readable results.json under %s, nothing to write", sweep_dir)
            return
        title = "Sweep " + "/".join(sweep_dir.resolve().parts[-2:])  # multirun/DATE/TIME -> DATE/TIME
        board = build_leaderboard(
            runs, load_references(self.references), benchmarks=self.benchmarks, title=title
        )
        written = board.write_all(sweep_dir, stem=self.stem)
        log.info("leaderboard of %d runs written to %s", len(runs), ", ".join(map(str, written.values())))
