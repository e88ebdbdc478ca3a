"""Evaluation results and leaderboards: read `results.json` files, compare runs, write tables and charts."""

from qwenvl.evaluation.leaderboard import Leaderboard, Row, build_leaderboard, lower_is_better
from qwenvl.evaluation.references import Reference, load_reference, load_references
from qwenvl.evaluation.results import (
    BenchmarkResult,
    ResultsError,
    RunResult,
    find_results,
    load_results,
)

__all__ = [
    "BenchmarkResult",
    "Leaderboard",
    "Reference",
    "ResultsError",
    "Row",
    "RunResult",
    "build_leaderboard",
    "find_results",
    "load_reference",
    "load_references",
    "load_results",
    "lower_is_better",
]
