"""COCO box mAP of grounded captions: every `<ref>label</ref><box>..</box>` a model writes is a
detection of class `label`, scored against the labelled boxes of the image with pycocotools.

Inputs per sample:

* `preds`: the generated text, parsed with `qwenvl.boxes.parse` (each box paired with the most
  recent `<ref>` text, un-escaped, as its label; all get score 1.0), or a list of
  `(label, box)` / `(label, box, score)` tuples;
* `targets`: a list of `(label, box)`;
* boxes are normalized `(x1, y1, x2, y2)` in [0, 1000) like the model's text. With
  `image_sizes` ((width, height) per sample) they are converted to pixels, which only matters
  for the COCO area ranges (small/medium/large); without, every image is taken as 1000 x 1000;
* `ids`: optional sample ids.

Labels are compared after lower-casing and collapsing white space. A box without a `<ref>` has
no label and is skipped. As in COCO, a class that no target has is ignored (its detections cost
nothing), and a metric without any target box is -1.

Output: a dict of float64 scalars named like torchmetrics' `MeanAveragePrecision`: `map`,
`map_50`, `map_75`, `map_small`, `map_medium`, `map_large`, `mar_1`, `mar_10`, `mar_100`,
`mar_small`, `mar_medium`, `mar_large`.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from qwenvl.boxes import SCALE, parse, to_pixels
from qwenvl.metrics.base import Ids, SampleMetric, as_tensor
from qwenvl.metrics.grounding import as_box, as_size
from qwenvl.metrics.text import as_text, collapse_ws

STAT_NAMES = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)  # fmt: skip  (the order of COCOeval.stats)

Box = tuple[float, float, float, float]
_ESCAPED = re.compile(r"\\(.)", re.S)


def _label(text: Any) -> str:
    return collapse_ws(text).lower() if isinstance(text, str) else ""


def _unescape(ref: str | None) -> str | None:
    # `<ref>` text is written through qwenvl.tokenizer.escape ("<" -> "\\<", "\\" -> "\\\\")
    return None if ref is None else _ESCAPED.sub(r"\1", ref)


def _detections(pred: Any, key: Any) -> list[tuple[str, Box, float]]:
    if pred is None or isinstance(pred, str):
        found = parse(as_text(pred, key))
        return [(_label(_unescape(g.ref)), tuple(map(float, g.box)), 1.0) for g in found]  # type: ignore[misc]
    out = []
    for item in pred:
        if not isinstance(item, list | tuple) or len(item) not in (2, 3):
            raise ValueError(
                f"sample {key!r}: a detection must be (label, box) or (label, box, score), got {item!r}"
            )
        score = float(item[2]) if len(item) == 3 else 1.0
        if not math.isfinite(score):
            raise ValueError(f"sample {key!r}: detection score must be finite, got {item[2]!r}")
        out.append((_label(item[0]), as_box(item[1], key, "predicted box"), score))
    return out


def _xywh(box: Box, width: float, height: float) -> list[float]:
    x1, y1, x2, y2 = to_pixels(box, width, height)  # type: ignore[arg-type]
    return [x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)]


def coco_map(samples: list[tuple[list, list, tuple[float, float]]]) -> dict[str, float]:
    """COCO bbox statistics for [(detections, targets, (width, height))] with normalized boxes."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    labels = sorted({lab for dets, gts, _ in samples for lab, *_ in (*dets, *gts) if lab})
    cat = {lab: i + 1 for i, lab in enumerate(labels)}
    images, gt_anns, dt_anns = [], [], []
    for img_id, (dets, gts, (width, height)) in enumerate(samples, 1):
        images.append({"id": img_id, "width": width, "height": height})
        for lab, box in gts:
            xywh = _xywh(box, width, height)
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": img_id, "category_id": cat[lab], "bbox": xywh,
                            "area": xywh[2] * xywh[3], "iscrowd": 0})  # fmt: skip
        for lab, box, score in dets:
            if not lab:
                continue
            xywh = _xywh(box, width, height)
            dt_anns.append({"id": len(dt_anns) + 1, "image_id": img_id, "category_id": cat[lab], "bbox": xywh,
                            "area": xywh[2] * xywh[3], "score": score, "iscrowd": 0})  # fmt: skip
    if not gt_anns:
        return dict.fromkeys(STAT_NAMES, -1.0)
    categories = [{"id": i, "name": lab} for lab, i in cat.items()]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
        gt, dt = COCO(), COCO()
        gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
        dt.dataset = {"images": images, "annotations": dt_anns, "categories": categories}
        gt.createIndex()
        dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = [im["id"] for im in images]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats, strict=True)}


class GroundedCaptionMAP(SampleMetric):
    """COCO mAP of the labelled boxes in generated grounded captions (see the module docstring)."""

    higher_is_better = True

    def update(
        self,
        preds: Sequence[str | Sequence[tuple] | None],
        targets: Sequence[Sequence[tuple[str, Box]]],
        image_sizes: Sequence[tuple[float, float]] | None = None,
        ids: Ids = None,
    ) -> None:
        n = len(preds)
        if len(targets) != n or (image_sizes is not None and len(image_sizes) != n):
            raise ValueError("preds, targets and image_sizes need one entry per sample")
        keys = self._keys(ids, n)
        payloads = []
        for i, (key, pred, target) in enumerate(zip(keys, preds, targets, strict=True)):
            size = (float(SCALE), float(SCALE)) if image_sizes is None else as_size(image_sizes[i], key)
            gts = []
            for item in target or []:
                if not isinstance(item, list | tuple) or len(item) != 2:
                    raise ValueError(f"sample {key!r}: a target must be (label, box), got {item!r}")
                lab = _label(item[0])
                if not lab:
                    raise ValueError(
                        f"sample {key!r}: target label must be a non-empty string, got {item[0]!r}"
                    )
                gts.append((lab, as_box(item[1], key, "target box")))
            payloads.append((_detections(pred, key), gts, size))
        self._extend(keys, payloads)

    def _compute_records(self, payloads: list[Any]) -> dict[str, Tensor]:
        return {k: as_tensor(v) for k, v in coco_map(payloads).items()}
