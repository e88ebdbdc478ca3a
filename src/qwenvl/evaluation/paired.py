"""Paired bootstrap: is run A's score on a benchmark really different from run B's on the same samples?

Two prediction files of one benchmark over the same sample ids (two checkpoints, two decoding
settings, or one model with its pictures and blind) differ partly by the luck of which 200 samples
were drawn. The paired bootstrap (Efron and Tibshirani 1993; Koehn 2004 for corpus metrics) draws
the sample ids with replacement `resamples` times, the same draw for both runs, re-scores each
draw with the benchmark's own scorers and reads the spread of the difference A - B:

- `low`, `high`: the central 95 % of the resampled differences (percentile interval);
- `p`: twice the share of draws in which A is not ahead of B (or not behind, whichever is smaller),
  capped at 1: a two-sided bootstrap p-value for "no difference".

With `by_type`, benchmarks whose predictions carry a `question_type` (the synthetic VQA and
two-picture questions) are also compared per type, each type's samples bootstrapped alone and
reported as `<benchmark>[<type>]`: a benchmark can read the pictures for one kind of question and
not at all for the others, and the whole score hides which.

Re-scoring each draw (rather than averaging per-sample scores) keeps corpus metrics right: CIDEr's
document frequencies and the character error rate's ratio of sums are recomputed per draw. A sample
drawn twice is scored twice: each copy gets its own id, because the metrics de-duplicate by id.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from qwenvl.evaluation.benchmark import Benchmark
from qwenvl.evaluation.protocol import apply_protocol
from qwenvl.evaluation.results import RunResult, load_results
from qwenvl.evaluation.runner import read_predictions
from qwenvl.evaluation.scoring import score

log = logging.getLogger(__name__)

# Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"cer", "unparsed"})
LEVEL = 0.95  # coverage of the interval


@dataclass(frozen=True)
class Comparison:
    """One benchmark metric of run A against run B over `samples` shared samples."""

    benchmark: str
    metric: str
    a: float
    b: float
    low: float  # 2.5th percentile of the resampled A - B
    high: float  # 97.5th percentile
    p: float
    samples: int
    resamples: int

    @property
    def difference(self) -> float:
        return self.a - self.b

    @property
    def winner(self) -> str | None:
        """The run the whole interval favours, "a" or "b"; None when it holds 0 (no difference shown)."""
        if self.low > 0 or self.high < 0:
            a_larger = self.low > 0
            return "a" if a_larger != (self.metric in LOWER_IS_BETTER) else "b"
        return None

    def to_dict(self) -> dict:
        return {**asdict(self), "difference": self.difference, "winner": self.winner}


def pair(records_a: Sequence[dict], records_b: Sequence[dict], where: str = "") -> tuple[list, list]:
    """The records of both runs for the sample ids they share, in A's order (first copy of an id).

    Raises ValueError when they share none; logs how many were left out when they share some.
    """
    first_a = {r["id"]: r for r in reversed(records_a)}
    first_b = {r["id"]: r for r in reversed(records_b)}
    shared = [i for i in dict.fromkeys(r["id"] for r in records_a) if i in first_b]
    if not shared:
        raise ValueError(
            f"{where or 'the two runs'}: no sample id in common ({len(first_a)} and {len(first_b)} ids); "
            "a paired comparison needs both runs scored on the same samples"
        )
    left_out = len(first_a) + len(first_b) - 2 * len(shared)
    if left_out:
        log.warning("%s: %d samples are in only one of the runs and are left out", where or "pair", left_out)
    return [first_a[i] for i in shared], [first_b[i] for i in shared]


def paired_bootstrap(
    records_a: Sequence[dict],
    records_b: Sequence[dict],
    metrics: Sequence[str],
    extra: dict | None = None,
    benchmark: str = "",
    resamples: int = 1000,
    seed: int = 0,
) -> list[Comparison]:
    """Every metric the scorers `metrics` report, A against B, over the samples both runs hold."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    a, b = pair(records_a, records_b, benchmark)
    full_a, full_b = score(a, list(metrics), extra), score(b, list(metrics), extra)
    names = [m for m in full_a if m in full_b]
    draws = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    diffs = np.empty((resamples, len(names)))
    for k, draw in enumerate(draws):
        sa, sb = (score(_copies(recs, draw), list(metrics), extra) for recs in (a, b))
        diffs[k] = [sa[m] - sb[m] for m in names]
    out = []
    tail = (1 - LEVEL) / 2
    for j, name in enumerate(names):
        d = diffs[:, j]
        low, high = np.quantile(d, [tail, 1 - tail])
        p = min(1.0, 2 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
        out.append(
            Comparison(
                benchmark=benchmark,
                metric=name,
                a=float(full_a[name]),
                b=float(full_b[name]),
                low=float(low),
                high=float(high),
                p=p,
                samples=len(a),
                resamples=resamples,
            )
        )
    return out


def _copies(records: list[dict], draw: np.ndarray) -> list[dict]:
    # A fresh id per position: the metrics keep one record per id, and a resample repeats samples.
    return [{**records[i], "id": f"{records[i]['id']}#{k}"} for k, i in enumerate(draw)]


def scoring_of(run: RunResult, name: str, bench_dir: Path) -> tuple[list[str], dict]:
    """The scorers and their options that produced `run`'s scores on `name`: recorded in results.json
    by the runner, or, for results written before it recorded them, read from the benchmark's YAML
    and the run's evaluation protocol."""
    result = run.benchmarks[name]
    if result.scoring is not None:
        return list(result.scoring["metrics"]), dict(result.scoring.get("extra") or {})
    path = Path(bench_dir) / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{run.path}: does not say how {name} was scored, and there is no {path} to read it "
            "from; evaluate the run again with this version to record it"
        )
    spec = OmegaConf.load(path)
    bench = Benchmark(
        name=name,
        dataset=[],
        metrics=list(spec.metrics),
        kind=str(spec.get("kind", "generate")),
        extra=dict(spec.get("extra") or {}),
    )
    bench = apply_protocol(bench, run.protocol)
    return bench.metrics, bench.extra


def _records(run: RunResult, name: str) -> list[dict]:
    path = run.run_dir / "predictions" / f"{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run.run_dir}: results.json lists {name} but {path} is missing")
    records = read_predictions(path)
    # The runner scores the first `samples` lines; an earlier, longer evaluation may have left more.
    n = run.benchmarks[name].samples
    return records if n is None else records[:n]


def compare_runs(
    dir_a: str | Path,
    dir_b: str | Path,
    benchmarks: Sequence[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    bench_dir: str | Path | None = None,
    by_type: bool = False,
) -> list[Comparison]:
    """Paired bootstrap of two evaluation directories (each a results.json and its predictions/)
    over the benchmarks both hold (or `benchmarks`); with `by_type`, each question type too."""
    if bench_dir is None:
        from qwenvl.paths import BENCH_DIR as bench_dir
    run_a, run_b = load_results(dir_a), load_results(dir_b)
    shared = [n for n in run_a.benchmarks if n in run_b.benchmarks]
    names = list(benchmarks) if benchmarks else shared
    missing = [n for n in names if n not in shared]
    if missing or not names:
        raise ValueError(
            f"benchmarks {missing or names} are not in both {run_a.run_dir} and {run_b.run_dir}; "
            f"both hold: {shared or 'none'}"
        )
    out: list[Comparison] = []
    for name in names:
        how_a, how_b = scoring_of(run_a, name, bench_dir), scoring_of(run_b, name, bench_dir)
        if how_a != how_b:
            raise ValueError(
                f"{name} was scored differently in {run_a.run_dir} ({how_a}) and {run_b.run_dir} "
                f"({how_b}); scores from different scorers cannot be compared"
            )
        recs_a, recs_b = _records(run_a, name), _records(run_b, name)
        out += paired_bootstrap(recs_a, recs_b, *how_a, benchmark=name, resamples=resamples, seed=seed)
        if by_type:
            for kind, (sub_a, sub_b) in by_question_type(recs_a, recs_b).items():
                label = f"{name}[{kind}]"  # is_by_type() reads this form back
                out += paired_bootstrap(sub_a, sub_b, *how_a, benchmark=label, resamples=resamples, seed=seed)
    return out


def is_by_type(comparison: Comparison) -> bool:
    """A comparison over one question type of a benchmark (`<benchmark>[<type>]`)."""
    return comparison.benchmark.endswith("]")


def by_question_type(records_a: Sequence[dict], records_b: Sequence[dict]) -> dict[str, tuple[list, list]]:
    """Both runs' records split by A's `question_type`, types in sorted order; {} when A's records
    carry none or only one (the split would repeat the whole benchmark)."""
    kinds = {r["id"]: r.get("question_type") for r in records_a}
    names = sorted({k for k in kinds.values() if k is not None})
    if len(names) < 2:
        return {}
    return {
        kind: (
            [r for r in records_a if kinds[r["id"]] == kind],
            [r for r in records_b if kinds.get(r["id"]) == kind],
        )
        for kind in names
    }


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def p_text(c: Comparison) -> str:
    """The p-value; below the resolution of the draws it reads "< 2/resamples"."""
    return f"< {2 / c.resamples:.2g}" if c.p == 0 else f"{c.p:.3g}"


def to_markdown(comparisons: Sequence[Comparison], a: str = "A", b: str = "B") -> str:
    """A table: each metric for A and B, A - B with its 95 % interval, p, and which run is better."""
    verdict = {"a": f"{a} better", "b": f"{b} better", None: "no difference shown"}
    lines = [
        f"| benchmark | metric | {a} | {b} | {a} − {b} | 95 % interval | p | verdict | samples |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.benchmark} | {c.metric} | {_num(c.a)} | {_num(c.b)} | {_num(c.difference)} | "
            f"[{_num(c.low)}, {_num(c.high)}] | {p_text(c)} | {verdict[c.winner]} | {c.samples} |"
        )
    return "\n".join(lines)
