"""Published numbers to compare against, from the YAML files in the repository's `evaluation/references/`.

A reference file describes one model::

    name: Qwen-VL (paper)          # the row's label on leaderboards
    source: Bai et al., 2023, ...  # where the numbers come from (shown under the table)
    benchmarks:
      vqav2_testdev: {metrics: {vqa_acc: 78.8}, split: test-dev}

Benchmark and metric keys follow the results.json conventions (see `qwenvl.evaluation.results`), so a
reference value lands in the same `benchmark/metric` column as our runs. Extra keys per benchmark
(`split`, `note`) are documentation for readers and are ignored here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from qwenvl.paths import ROOT

REFERENCES_DIR = ROOT / "evaluation" / "references"


@dataclass(frozen=True)
class Reference:
    """One row of published numbers, keyed by `benchmark/metric`."""

    name: str
    source: str
    values: dict[str, float]
    path: Path


def available(directory: Path = REFERENCES_DIR) -> list[str]:
    """Names (file stems) of the reference files shipped in `evaluation/references/`."""
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []


def _resolve(name: str | Path, directory: Path) -> Path:
    # A bare name picks a shipped file; anything that looks like a path is taken as one.
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return path
    return directory / f"{name}.yaml"


def load_reference(name: str | Path, directory: Path = REFERENCES_DIR) -> Reference:
    """Load one reference file, by name (`qwen_vl`) or path. Errors name the file and the problem."""
    path = _resolve(name, directory)
    if not path.is_file():
        known = ", ".join(available(directory)) or "none"
        raise FileNotFoundError(f"no reference file {path} (available: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
        raise ValueError(f"{path}: expected a mapping with a 'benchmarks' mapping")

    values: dict[str, float] = {}
    for bench, entry in data["benchmarks"].items():
        metrics = entry.get("metrics") if isinstance(entry, dict) else None
        if not isinstance(metrics, dict):
            raise ValueError(f"{path}: benchmarks.{bench} needs a 'metrics' mapping")
        for metric, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{path}: benchmarks.{bench}.metrics.{metric} is not a number: {value!r}")
            values[f"{bench}/{metric}"] = float(value)
    return Reference(
        name=str(data.get("name") or path.stem),
        source=" ".join(str(data.get("source", "")).split()),
        values=values,
        path=path,
    )


def load_references(
    names: str | Path | list[str | Path] | None, directory: Path = REFERENCES_DIR
) -> list[Reference]:
    """Load several reference files; None, "" and "none" mean no references."""
    if names is None:
        return []
    if isinstance(names, str | Path):
        names = [names]
    return [load_reference(n, directory) for n in names if str(n).strip() and str(n).lower() != "none"]
