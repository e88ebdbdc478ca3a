"""Speed of `qwenvl.metrics` CIDEr against pycocoevalcap's, on a COCO-sized caption set.

    python -m qwenvl.metrics.bench_cider [--images 5000] [--refs 5] [--repeats 3] [--no-java]

Prints the median wall time of each, their ratio, and the largest difference between the two
scores. "scorer" compares `cider_d` with pycocoevalcap's `Cider().compute_score` on the same
pre-tokenized text; "end to end" (only where `java` is installed) compares the `CIDEr` metric on
raw captions (pure-Python tokenization included, its cache cleared before each run) with
pycocoevalcap's `PTBTokenizer` (Java) followed by `Cider`. Needs the `dev` extra (pycocoevalcap).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

from qwenvl.metrics.cider import CIDEr, cider_d
from qwenvl.metrics.ptb import ptb_tokenize

_SUBJECTS = [
    "man",
    "woman",
    "person",
    "boy",
    "girl",
    "dog",
    "cat",
    "horse",
    "giraffe",
    "elephant",
    "zebra",
    "bird",
    "child",
    "player",
    "skier",
    "surfer",
    "couple",
    "group of people",
    "bus",
]
_ADJECTIVES = ["", "", "small", "large", "young", "old", "white", "black", "brown", "red", "blue", "little"]
_VERBS = [
    "sitting on",
    "standing next to",
    "riding",
    "holding",
    "walking down",
    "looking at",
    "playing with",
    "eating",
    "laying on",
    "flying over",
    "parked near",
    "running across",
]
_OBJECTS = [
    "bench",
    "street",
    "surfboard",
    "skateboard",
    "table",
    "field",
    "beach",
    "kite",
    "frisbee",
    "pizza",
    "sandwich",
    "umbrella",
    "couch",
    "grass",
    "snow",
    "road",
    "fence",
    "tree",
]
_TAILS = [
    "",
    "",
    "",
    " in the park",
    " on a sunny day",
    " near the water",
    ", while people watch",
    " in front of a building",
    " at night",
    " with a smile",
]


def _caption(rng: random.Random) -> str:
    adj1, adj2 = rng.choice(_ADJECTIVES), rng.choice(_ADJECTIVES)
    subject = f"{adj1} {rng.choice(_SUBJECTS)}".strip()
    obj = f"{adj2} {rng.choice(_OBJECTS)}".strip()
    det = "An" if subject[0] in "aeiou" else "A"
    text = f"{det} {subject} {rng.choice(_VERBS)} a {obj}{rng.choice(_TAILS)}"
    return text + rng.choice([".", ".", "", " ."])


def synthetic_corpus(images: int, refs: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """COCO-like raw captions: one candidate and `refs` references per image (seeded)."""
    rng = random.Random(seed)
    return [_caption(rng) for _ in range(images)], [
        [_caption(rng) for _ in range(refs)] for _ in range(images)
    ]


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--refs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-java", action="store_true", help="skip the end-to-end comparison")
    args = parser.parse_args(argv)

    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:  # pragma: no cover - depends on the environment
        raise SystemExit("pycocoevalcap is not installed: pip install -e '.[dev]'") from None

    cands, refs = synthetic_corpus(args.images, args.refs)
    tok_cands = [ptb_tokenize(c) for c in cands]
    tok_refs = [[ptb_tokenize(r) for r in rs] for rs in refs]
    gts = {i: rs for i, rs in enumerate(tok_refs)}
    res = {i: [c] for i, c in enumerate(tok_cands)}
    print(f"{args.images} images x {args.refs} references, median of {args.repeats} runs")

    t_ref, (s_ref, _) = _median_time(lambda: Cider().compute_score(gts, res), args.repeats)
    t_new, (s_new, _) = _median_time(lambda: cider_d(tok_cands, tok_refs), args.repeats)
    out = {"scorer_pycocoevalcap_s": t_ref, "scorer_qwenvl_s": t_new, "scorer_ratio": t_ref / t_new}
    print(
        f"scorer      pycocoevalcap {t_ref:7.3f} s   qwenvl {t_new:7.3f} s   {t_ref / t_new:5.1f}x faster"
        f"   |score diff| {abs(s_ref - s_new):.1e}"
    )

    if not args.no_java and shutil.which("java"):
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        raw_gts = {i: [{"caption": r} for r in rs] for i, rs in enumerate(refs)}
        raw_res = {i: [{"caption": c}] for i, c in enumerate(cands)}

        def reference() -> float:
            tok = PTBTokenizer()
            return Cider().compute_score(tok.tokenize(raw_gts), tok.tokenize(raw_res))[0]

        def ours() -> float:
            ptb_tokenize.cache_clear()
            metric = CIDEr(lang="en")
            metric.update(cands, refs, ids=list(range(len(cands))))
            return float(metric.compute())

        e_ref, s_ref = _median_time(reference, args.repeats)
        e_new, s_new = _median_time(ours, args.repeats)
        out.update(
            end_to_end_pycocoevalcap_s=e_ref, end_to_end_qwenvl_s=e_new, end_to_end_ratio=e_ref / e_new
        )
        print(
            f"end to end  pycocoevalcap {e_ref:7.3f} s   qwenvl {e_new:7.3f} s   {e_ref / e_new:5.1f}x faster"
            f"   |score diff| {abs(s_ref - s_new):.1e}"
        )
    return out


if __name__ == "__main__":
    main()
