"""qwenvl-compare: is run A better than run B on each benchmark, beyond the luck of the samples?

    qwenvl-compare runs/eval_a runs/eval_b                      # two checkpoints, same benchmarks
    qwenvl-compare RUN/eval RUN/eval_swapped --names "with images" swapped   # beyond chance?
    qwenvl-compare RUN/eval RUN/eval_blind --names "with images" blind   # what pixels are worth
    qwenvl-compare A B --benchmarks synthetic_vqa --resamples 5000 --out reports/
    qwenvl-compare RUN/eval RUN/eval_swapped --by-type               # and per question type

Each DIR is what qwenvl-eval wrote (results.json and predictions/). Pairs the two runs' predictions
by sample id, runs a paired bootstrap per benchmark (qwenvl.evaluation.paired) and prints a table of
each metric for A and B, A − B with its 95 % interval and p-value; writes compare.md, compare.json
and compare.png (a forest plot) into --out (default: DIR A). A plain argparse tool, like
qwenvl-leaderboard: it reads finished runs and has no config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qwenvl.evaluation.paired import compare_runs, to_markdown
from qwenvl.evaluation.paired_chart import forest_png


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qwenvl-compare", description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, metavar="A", help="evaluation directory of run A")
    parser.add_argument("b", type=Path, metavar="B", help="evaluation directory of run B")
    parser.add_argument("--names", nargs=2, default=None, metavar=("NAME_A", "NAME_B"), help="labels")
    parser.add_argument("--benchmarks", help="comma-separated benchmarks (default: those both runs hold)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap draws (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    parser.add_argument("--out", type=Path, help="where to write compare.md/.json/.png (default: A)")
    parser.add_argument(
        "--by-type", action="store_true", help="also compare each question type (synthetic VQA, two-picture)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name_a, name_b = args.names or (str(args.a), str(args.b))
    benchmarks = [b for b in (args.benchmarks or "").split(",") if b]
    try:
        comparisons = compare_runs(
            args.a, args.b, benchmarks or None, args.resamples, args.seed, by_type=args.by_type
        )
    except (OSError, ValueError) as e:
        print(f"qwenvl-compare: {e}", file=sys.stderr)
        return 2
    table = to_markdown(comparisons, name_a, name_b)
    out = args.out or args.a
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table + "\n", encoding="utf-8")
    report = {"a": str(args.a), "b": str(args.b), "comparisons": [c.to_dict() for c in comparisons]}
    (out / "compare.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    forest_png(comparisons, out / "compare.png", name_a, name_b)
    print(table)
    print(f"\nwritten: {out / 'compare.md'}, compare.json, compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
