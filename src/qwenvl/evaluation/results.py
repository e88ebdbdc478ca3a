"""Evaluation results on disk: the `results.json` an evaluation run writes into its run directory.

Format (one file per run; UTF-8 JSON)::

    {
      "model": {"name": "qwen-vl-tiny", "ckpt": "runs/train/last.ckpt", "parameters": 123456},
      "config": {"...": "the resolved Hydra config of the evaluation run"},
      "overrides": ["adapter.num_queries=64", "seed=1"],
      "benchmarks": {
        "synthetic_vqa": {"metrics": {"vqa_acc": 71.2, "unparsed": 1.4}, "samples": 500, "seconds": 12.3},
        "refcoco_val": {"metrics": {"acc@0.5": 80.1}, "samples": 10834, "seconds": 840.0}
      },
      "created": "2026-11-26T12:00:00"
    }

Required: `model.name` and `benchmarks`, where every benchmark has a `metrics` mapping from metric name
to a number. Everything else is optional:

* `overrides` - the Hydra command-line overrides of the run. When it is missing, the job's
  `.hydra/overrides.yaml` next to `results.json` is read instead (Hydra writes it in every run and
  every multirun job directory), and failing that the run has no overrides.
* `config`, `model.ckpt`, `model.parameters`, `created` (ISO 8601), and per benchmark `samples`
  (how many examples were scored) and `seconds` (wall time of that benchmark).

Benchmark keys name the dataset and split (`vqav2_testdev`, `refcoco_val`); metric keys are short and
lower case (`vqa_acc`, `cider`, `acc@0.5`, `anls`, `relaxed_acc`, `acc`, `cer`, `unparsed`).
Percent-style metrics are stored on a 0-100 scale so that they compare with the published numbers in
`evaluation/references/`.

Runs are found anywhere below the given directories, which covers single runs (`runs/eval/`) and
Hydra multirun sweeps (`multirun/DATE/TIME/0/results.json`, `.../1/results.json`, ...).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RESULTS_NAME = "results.json"


class ResultsError(ValueError):
    """A results.json that cannot be used; the message names the file and what is wrong with it."""


@dataclass
class BenchmarkResult:
    """The scores of one run on one benchmark."""

    metrics: dict[str, float]
    samples: int | None = None
    seconds: float | None = None
    # How the runner scored it: {"metrics": [scorer names], "extra": {...}}; None in older files.
    scoring: dict[str, Any] | None = None


@dataclass
class RunResult:
    """One evaluation run, as read from its results.json."""

    path: Path  # the results.json file
    model: dict[str, Any]
    benchmarks: dict[str, BenchmarkResult]
    overrides: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    created: str | None = None
    protocol: str = "default"  # the evaluation protocol (qwenvl.evaluation.protocol)

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def model_name(self) -> str:
        return str(self.model.get("name", ""))

    def metrics(self) -> dict[str, float]:
        """All scores flattened to `benchmark/metric` keys (the leaderboard's columns)."""
        return {
            f"{bench}/{metric}": value
            for bench, result in self.benchmarks.items()
            for metric, value in result.metrics.items()
        }


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but `true` is never a score.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_hydra_overrides(run_dir: Path) -> list[str]:
    """The job's overrides from `.hydra/overrides.yaml`, or [] when the run was not launched by Hydra."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ResultsError(f"{path}: not valid YAML ({e})") from e
    if data is None:
        return []
    if not isinstance(data, list):
        raise ResultsError(f"{path}: expected a list of overrides, got {type(data).__name__}")
    return [str(o) for o in data]


def _parse_benchmark(path: Path, name: str, data: Any) -> BenchmarkResult:
    where = f"{path}: benchmarks.{name}"
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: expected an object, got {type(data).__name__}")
    if "metrics" not in data:
        raise ResultsError(f"{where}: missing key 'metrics'")
    metrics = data["metrics"]
    if not isinstance(metrics, dict):
        raise ResultsError(f"{where}.metrics: expected an object, got {type(metrics).__name__}")
    for metric, value in metrics.items():
        if not _is_number(value) or not math.isfinite(value):
            raise ResultsError(f"{where}.metrics.{metric}: expected a finite number, got {value!r}")
    samples, seconds = data.get("samples"), data.get("seconds")
    if samples is not None and not _is_number(samples):
        raise ResultsError(f"{where}.samples: expected a number, got {samples!r}")
    if seconds is not None and not _is_number(seconds):
        raise ResultsError(f"{where}.seconds: expected a number, got {seconds!r}")
    scoring = data.get("scoring")
    if scoring is not None and not (isinstance(scoring, dict) and isinstance(scoring.get("metrics"), list)):
        raise ResultsError(f"{where}.scoring: expected an object with a list 'metrics', got {scoring!r}")
    return BenchmarkResult(
        metrics={str(k): float(v) for k, v in metrics.items()},
        samples=int(samples) if samples is not None else None,
        seconds=float(seconds) if seconds is not None else None,
        scoring=scoring,
    )


def load_results(path: str | Path) -> RunResult:
    """Read one results.json (or the results.json inside a run directory).

    Raises ResultsError, naming the file, when it is not valid JSON or lacks a required key, so that a
    single broken run is easy to find in a sweep of hundreds.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_NAME
    if not path.is_file():
        raise ResultsError(f"{path}: no such file (no results.json: give a directory that qwenvl-eval wrote)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not UTF-8 text ({e})") from e
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")

    for key in ("model", "benchmarks"):
        if key not in data:
            raise ResultsError(f"{path}: missing key '{key}'")
    model = data["model"]
    if not isinstance(model, dict) or "name" not in model:
        raise ResultsError(f"{path}: 'model' must be an object with a 'name'")
    benchmarks = data["benchmarks"]
    if not isinstance(benchmarks, dict):
        raise ResultsError(f"{path}: 'benchmarks' must be an object, got {type(benchmarks).__name__}")

    overrides = data.get("overrides")
    if overrides is None:
        overrides = _read_hydra_overrides(path.parent)
    elif not isinstance(overrides, list):
        raise ResultsError(f"{path}: 'overrides' must be a list of strings, got {type(overrides).__name__}")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise ResultsError(f"{path}: 'config' must be an object, got {type(config).__name__}")

    return RunResult(
        path=path,
        model=model,
        benchmarks={str(name): _parse_benchmark(path, name, b) for name, b in benchmarks.items()},
        overrides=[str(o) for o in overrides],
        config=config,
        created=data.get("created"),
        protocol=str(data.get("protocol") or "default"),
    )


def _natural_key(path: Path) -> list[Any]:
    # Multirun job directories are 0, 1, ..., 10: sort them as numbers, not as text (0, 1, 10, 2).
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_results(dirs: str | Path | list[str | Path]) -> list[Path]:
    """Every results.json below the given directories (a results.json file may be given directly).

    The result is sorted (numerically for multirun job numbers) and free of duplicates. A directory that
    does not exist raises FileNotFoundError; one with no results simply contributes nothing.
    """
    if isinstance(dirs, str | Path):
        dirs = [dirs]
    found: set[Path] = set()
    for d in map(Path, dirs):
        if d.is_file():
            found.add(d.resolve())
        elif d.is_dir():
            found.update(p.resolve() for p in d.rglob(RESULTS_NAME) if p.is_file())
        else:
            raise FileNotFoundError(f"no such file or directory: {d}")
    return sorted(found, key=_natural_key)
