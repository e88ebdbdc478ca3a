"""Referring-expression grounding accuracy (RefCOCO-style): is the predicted box right?

Inputs per sample:

* `preds`: generated text, from which the first `(x1,y1),(x2,y2)` box is read with
  `qwenvl.boxes.first_box` (normalized integers; divided by `scale` = 1000, or 999 to reproduce
  Qwen-VL's evaluation script, and multiplied by the image size) - or a pixel box
  `(x1, y1, x2, y2)` given directly; None or text without a box is "unparsed";
* `targets`: the pixel box `(x1, y1, x2, y2)` of the referred object (x2, y2 exclusive);
* `image_sizes`: `(width, height)` in pixels per sample, needed for text predictions;
* `ids`: optional sample ids.

Outputs (float64 scalars): `acc@t` for every threshold t (fraction of samples with IoU >= t; an
unparsed prediction is a miss), `miou` (mean IoU, unparsed counting 0) and `unparsed` (how many
predictions had no box).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from qwenvl.boxes import SCALE, first_box, to_pixels
from qwenvl.metrics.base import Ids, SampleMetric, as_tensor, mean

Box = tuple[float, float, float, float]


def box_iou(a: Box, b: Box) -> float:
    """IoU of two pixel boxes (x2, y2 exclusive, so area = (x2 - x1) * (y2 - y1)); 0 if degenerate."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, iw) * max(0.0, ih)
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def as_box(value: Any, key: Any, what: str) -> Box:
    """4 finite numbers (x1, y1, x2, y2), or a ValueError naming the sample."""
    try:
        box = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f"sample {key!r}: {what} must be 4 finite numbers (x1, y1, x2, y2), got {value!r}")
    return box  # type: ignore[return-value]


def as_size(value: Any, key: Any) -> tuple[float, float]:
    """A positive (width, height), or a ValueError naming the sample."""
    try:
        size = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or not all(v > 0 and math.isfinite(v) for v in size):
        raise ValueError(f"sample {key!r}: image size must be a positive (width, height), got {value!r}")
    return size  # type: ignore[return-value]


def threshold_key(t: float) -> str:
    """Output key for a threshold: 0.5 -> "acc@0.5"."""
    return f"acc@{t:g}"


class GroundingAccuracy(SampleMetric):
    """Acc@IoU-thresholds, mean IoU and the unparsed count for grounding predictions.

    Args:
        thresholds: IoU thresholds, e.g. `(0.5,)` -> key "acc@0.5"; a hit needs IoU >= t.
        scale: divisor for the normalized coordinates in generated text (1000; 999 reproduces
            Qwen-VL's evaluation).
    """

    higher_is_better = True

    def __init__(self, thresholds: Sequence[float] = (0.5,), scale: float = SCALE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not thresholds or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be a non-empty list of values in [0, 1], got {thresholds!r}")
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scale = scale

    def update(
        self,
        preds: Sequence[str | Box | None],
        targets: Sequence[Box],
        image_sizes: Sequence[tuple[float, float]] | None = None,
        ids: Ids = None,
    ) -> None:
        n = len(preds)
        if len(targets) != n or (image_sizes is not None and len(image_sizes) != n):
            raise ValueError("preds, targets and image_sizes need one entry per sample")
        keys = self._keys(ids, n)
        payloads = []  # (iou, parsed)
        for i, (key, pred, target) in enumerate(zip(keys, preds, targets, strict=True)):
            gt = as_box(target, key, "target box")
            if gt[2] <= gt[0] or gt[3] <= gt[1]:
                raise ValueError(f"sample {key!r}: target box {target!r} is empty (needs x1 < x2, y1 < y2)")
            if pred is None:
                box = None
            elif isinstance(pred, str):
                if image_sizes is None:
                    raise ValueError(f"sample {key!r}: text predictions need image_sizes to scale the box")
                width, height = as_size(image_sizes[i], key)
                norm = first_box(pred)
                box = None if norm is None else to_pixels(norm, width, height, self.scale)
            else:
                box = as_box(pred, key, "predicted box")
            payloads.append((0.0, False) if box is None else (box_iou(box, gt), True))
        self._extend(keys, payloads)

    def _compute_records(self, payloads: list[Any]) -> dict[str, Tensor]:
        # an unparsed prediction is a miss even at threshold 0
        out = {
            threshold_key(t): as_tensor(mean(float(ok and iou >= t) for iou, ok in payloads))
            for t in self.thresholds
        }
        out["miou"] = as_tensor(mean(iou for iou, _ in payloads))
        out["unparsed"] = as_tensor(float(sum(1 for _, ok in payloads if not ok)))
        return out
