"""qwenvl-leaderboard: compare evaluation runs in one table and chart.

    qwenvl-leaderboard multirun/2026-11-26/12-00-00            # a sweep: every job's results.json
    qwenvl-leaderboard runs/eval_a runs/eval_b --out reports/  # hand-picked runs
    qwenvl-leaderboard multirun/... --references none --benchmarks synthetic_vqa,refcoco_val

Prints the Markdown table and writes leaderboard.md/.csv/.html/.png (into the first DIR unless --out
is given). A plain argparse tool rather than a Hydra app: it reads finished runs and has no config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qwenvl.evaluation import references as refs
from qwenvl.evaluation.leaderboard import build_leaderboard
from qwenvl.evaluation.results import ResultsError, find_results, load_results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="qwenvl-leaderboard",
        description="Build a leaderboard from the results.json files found under the given directories.",
    )
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run or sweep directories")
    parser.add_argument("--out", type=Path, help="where to write the files (default: the first DIR)")
    parser.add_argument(
        "--references",
        default="qwen_vl",
        help=f"published numbers to add: {' | '.join([*refs.available(), 'none'])} "
        "or a YAML path (default: qwen_vl)",
    )
    parser.add_argument("--benchmarks", help="comma-separated benchmarks (or benchmark/metric) to keep")
    parser.add_argument("--stem", default="leaderboard", help="file name stem (default: leaderboard)")
    parser.add_argument("--title", default="Leaderboard", help="title of the table and chart")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def fail(message: str) -> int:
        print(f"qwenvl-leaderboard: error: {message}", file=sys.stderr)
        return 1

    try:
        paths = find_results(args.dirs)
    except FileNotFoundError as e:
        return fail(str(e))
    if not paths:
        return fail("no results.json found under " + ", ".join(str(d) for d in args.dirs))
    try:
        runs = [load_results(p) for p in paths]
        references = refs.load_references(args.references.split(","))
        benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()] if args.benchmarks else None
        board = build_leaderboard(runs, references, benchmarks=benchmarks, title=args.title)
    except (ResultsError, FileNotFoundError, ValueError) as e:
        return fail(str(e))

    print(board.to_markdown())
    written = board.write_all(args.out or args.dirs[0], stem=args.stem)
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
