"""Metric names used by benchmark YAMLs -> scores of a predictions file.

Each scorer takes the finished records (see runner.py) and returns {metric: value}; percentages
are on a 0-100 scale and CIDEr is x100, as papers report them, so rows compare with
`evaluation/references/`.
"""

from __future__ import annotations

from collections.abc import Callable

from qwenvl.boxes import to_pixels

# The records given to a scorer are already complete (the runner merges every rank's file before
# scoring on rank 0), so metrics must not wait for the other ranks to join a sync.
LOCAL = {"sync_on_compute": False}


def _pct(value) -> float:
    return round(100 * float(value), 2)


def _ids(records):
    return [r["id"] for r in records]


def exact_match(records, extra) -> dict:
    from qwenvl.metrics import ExactMatch

    m = ExactMatch(**LOCAL)
    m.update([r["prediction"] for r in records], [r["answers"] for r in records], ids=_ids(records))
    return {"acc": _pct(m.compute())}


def vqa_acc(records, extra) -> dict:
    from qwenvl.metrics import VQAAccuracy

    m = VQAAccuracy(mode=extra.get("vqa_mode", "evalai"), **LOCAL)
    m.update([r["prediction"] for r in records], [r["answers"] for r in records], ids=_ids(records))
    return {"vqa_acc": _pct(m.compute())}


def cider(records, extra) -> dict:
    from qwenvl.metrics import CIDEr

    m = CIDEr(**LOCAL)
    m.update([r["prediction"] for r in records], [r["answers"] for r in records], ids=_ids(records))
    return {"cider": _pct(m.compute())}


def grounding(records, extra) -> dict:
    """Acc@0.5 and mean IoU from the first box in the text; `box_scale: 999` is Qwen-VL's script."""
    from qwenvl.metrics import GroundingAccuracy

    m = GroundingAccuracy(scale=extra.get("box_scale", 1000), **LOCAL)
    sizes = [tuple(r["image_size"]) for r in records]
    targets = [to_pixels(tuple(r["boxes"][0]), w, h) for r, (w, h) in zip(records, sizes, strict=True)]
    # The prompt ends in `<box>`: the generated text continues it.
    m.update(["<box>" + r["prediction"] for r in records], targets, image_sizes=sizes, ids=_ids(records))
    out = m.compute()
    return {"acc@0.5": _pct(out["acc@0.5"]), "miou": _pct(out["miou"]), "unparsed": int(out["unparsed"])}


def anls(records, extra) -> dict:
    from qwenvl.metrics import ANLS

    m = ANLS(**LOCAL)
    m.update([r["prediction"] for r in records], [r["answers"] for r in records], ids=_ids(records))
    return {"anls": _pct(m.compute())}


def relaxed_acc(records, extra) -> dict:
    from qwenvl.metrics import RelaxedAccuracy

    m = RelaxedAccuracy(**LOCAL)
    m.update([r["prediction"] for r in records], [r["answers"] for r in records], ids=_ids(records))
    return {"relaxed_acc": _pct(m.compute())}


def cer(records, extra) -> dict:
    from qwenvl.metrics import CharErrorRate

    m = CharErrorRate(**LOCAL)
    m.update([r["prediction"] for r in records], [r["answers"][0] if r["answers"] else "" for r in records])
    return {"cer": round(float(m.compute()), 4)}


def choice_acc(records, extra) -> dict:
    """Multiple choice scored by likelihood: the prediction is the chosen option's letter."""
    return {"acc": _pct(sum(r["prediction"] == r["answers"][0] for r in records) / max(1, len(records)))}


SCORERS: dict[str, Callable] = {
    "exact_match": exact_match,
    "vqa_acc": vqa_acc,
    "cider": cider,
    "grounding": grounding,
    "anls": anls,
    "relaxed_acc": relaxed_acc,
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
