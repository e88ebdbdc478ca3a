"""Metric names used by benchmark YAMLs -> scores of a predictions file.

Each scorer takes the finished records (see runner.py) and returns {metric: value}; percentages
are on a 0-100 scale and CIDEr is x100, as papers report them, so rows compare with
`evaluation/references/`.
"""

from __future__ import annotations

from collections.abc import Callable

from qwenvl.boxes import to_pixels
from qwenvl.metrics import (
    ANLS,
    CharErrorRate,
    CIDEr,
    ExactMatch,
    GroundingAccuracy,
    RelaxedAccuracy,
    VQAAccuracy,
)

# The records given to a scorer are already complete (the runner merges every rank's file before
# scoring on rank 0), so metrics must not wait for the other ranks to join a sync.
LOCAL = {"sync_on_compute": False}


def _pct(value) -> float:
    return round(100 * float(value), 2)


def _answers(make: Callable, key: str) -> Callable:
    """A scorer of predictions against each record's reference answers, reported as `key` (x100)."""

    def scorer(records, extra) -> dict:
        m = make(extra)
        m.update(
            [r["prediction"] for r in records],
            [r["answers"] for r in records],
            ids=[r["id"] for r in records],
        )
        return {key: _pct(m.compute())}

    return scorer


def grounding(records, extra) -> dict:
    """Acc@0.5 and mean IoU from the first box in the text; `box_scale: 999` is Qwen-VL's script."""
    m = GroundingAccuracy(scale=extra.get("box_scale", 1000), **LOCAL)
    sizes = [tuple(r["image_size"]) for r in records]
    targets = [to_pixels(tuple(r["boxes"][0]), w, h) for r, (w, h) in zip(records, sizes, strict=True)]
    # The prompt ends in `<box>`: the generated text continues it.
    ids = [r["id"] for r in records]
    m.update(["<box>" + r["prediction"] for r in records], targets, image_sizes=sizes, ids=ids)
    out = m.compute()
    return {"acc@0.5": _pct(out["acc@0.5"]), "miou": _pct(out["miou"]), "unparsed": int(out["unparsed"])}


def cer(records, extra) -> dict:
    m = CharErrorRate(**LOCAL)
    m.update([r["prediction"] for r in records], [r["answers"][0] if r["answers"] else "" for r in records])
    return {"cer": round(float(m.compute()), 4)}


def choice_acc(records, extra) -> dict:
    """Multiple choice scored by likelihood: the prediction is the chosen option's letter."""
    return {"acc": _pct(sum(r["prediction"] == r["answers"][0] for r in records) / max(1, len(records)))}


SCORERS: dict[str, Callable] = {
    "exact_match": _answers(lambda extra: ExactMatch(**LOCAL), "acc"),
    "vqa_acc": _answers(lambda extra: VQAAccuracy(mode=extra.get("vqa_mode", "evalai"), **LOCAL), "vqa_acc"),
    "cider": _answers(lambda extra: CIDEr(**LOCAL), "cider"),
    "grounding": grounding,
    "anls": _answers(lambda extra: ANLS(**LOCAL), "anls"),
    "relaxed_acc": _answers(lambda extra: RelaxedAccuracy(**LOCAL), "relaxed_acc"),
    "cer": cer,
    "choice_acc": choice_acc,
}


def score(records: list[dict], metrics: list[str], extra: dict | None = None) -> dict[str, float]:
    """All requested metrics over the records. An empty file scores nothing (and says so)."""
    unknown = [m for m in metrics if m not in SCORERS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {sorted(SCORERS)}")
    if not records:
        return {}
    out: dict[str, float] = {}
    for name in metrics:
        out.update(SCORERS[name](records, extra or {}))
    return out
