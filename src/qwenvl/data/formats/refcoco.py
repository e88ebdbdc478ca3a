"""RefCOCO / RefCOCO+ / RefCOCOg referring expressions -> `grounding` Samples.

The usual input is the JSON-lines conversion that evaluation kits ship, one expression a line:

    {"image": "train2014/COCO_train2014_000000380440.jpg", "sent": "the man on the left",
     "bbox": [x, y, w, h], "width": 640, "height": 480}

`bbox` is in *pixels* (top-left corner, width, height; COCO's convention) and `width`/`height`
are the image's pixel size. The Sample's prompt is `<ref>{expression}</ref><box>` and its target
`(x1,y1),(x2,y2)</box>` in *normalized [0, 1000) integers*; `boxes` holds that normalized box and
`meta["bbox_pixels"]` the pixel corners (x1, y1, x2, y2) for IoU evaluation.

The original `refs(unc).p` pickle (with `instances.json` beside it) is read only with
`allow_pickle=True`: unpickling runs whatever code the file names, so a pickle is as trusted
as a script. Prefer the JSON-lines conversion.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qwenvl.boxes import format_box, to_norm, validate_pixels
from qwenvl.data import templates
from qwenvl.data.formats.base import FormatLoader, read_json, read_jsonl
from qwenvl.data.sample import Sample
from qwenvl.tokenizer import escape

PICKLE_SUFFIXES = (".p", ".pkl", ".pickle")


class RefCOCO(FormatLoader):
    """Referring-expression grounding. `split` keeps records whose "split" matches (records
    without one are kept). Boxes overshooting the image border by at most `clip_tolerance`
    pixels (rounding in COCO annotations) are clipped; further out they are bad input."""

    name = "refcoco"

    def __init__(
        self,
        root,
        annotation_file,
        split=None,
        on_error="skip",
        lang="en",
        *,
        allow_pickle=False,
        instances_file="instances.json",
        clip_tolerance=1.0,
        **kw,
    ):
        self.allow_pickle, self.instances_file, self.clip_tolerance = (
            allow_pickle,
            instances_file,
            clip_tolerance,
        )
        super().__init__(root, annotation_file, split, on_error, lang, **kw)

    # -- reading -----------------------------------------------------------------------------
    def records(self) -> Iterator[tuple[Any, Any]]:
        if Path(self.annotation_file).suffix in PICKLE_SUFFIXES:
            yield from self._pickle_records()
        else:
            yield from enumerate(read_jsonl(self.annotation_file))

    def _pickle_records(self) -> Iterator[tuple[Any, Any]]:
        if not self.allow_pickle:
            raise ValueError(
                f"{self.annotation_file}: refusing to unpickle: loading a pickle runs arbitrary code "
                "named in the file. Convert it to JSON lines ({image, sent, bbox, width, height}), or pass "
                "allow_pickle=True if you trust where the file came from"
            )
        with open(self.annotation_file, "rb") as f:
            refs = pickle.load(f)  # noqa: S301 -- explicit opt-in above
        instances_path = Path(self.annotation_file).parent / self.instances_file
        instances = read_json(instances_path)
        if not isinstance(refs, list) or not isinstance(instances, dict):
            raise self.layout_error(f"a list of refs, and {instances_path} with images and annotations")
        images = {i.get("id"): i for i in instances.get("images", []) if isinstance(i, dict)}
        anns = {a.get("id"): a for a in instances.get("annotations", []) if isinstance(a, dict)}
        for r, ref in enumerate(refs):
            if not isinstance(ref, dict):
                yield r, ref  # build() reports it
                continue
            image = images.get(ref.get("image_id"), {})
            ann = anns.get(ref.get("ann_id"), {})
            for s, sent in enumerate(ref.get("sentences") or [{}]):
                yield (
                    f"{r}/{s}",
                    {
                        "image": image.get("file_name"),
                        "sent": sent.get("sent", sent.get("raw")) if isinstance(sent, dict) else None,
                        "bbox": ann.get("bbox"),
                        "width": image.get("width"),
                        "height": image.get("height"),
                        "split": ref.get("split"),
                        "ref_id": ref.get("ref_id"),
                        "sentence": s,
                    },
                )

    # -- one record --------------------------------------------------------------------------
    def build(self, record: Any, raw: Any) -> Sample | None:
        raw = self.as_dict(record, raw)
        if self.split is not None and "split" in raw and not self.in_split(raw["split"]):
            return None
        key = "sent" if raw.get("sent") is not None else "expression"
        if raw.get(key) is None:
            raise self.error(
                record,
                "missing_field",
                f"missing field 'sent' or 'expression' (fields present: {sorted(raw)})",
            )
        expression = self.get(raw, record, key).strip()
        image = self.image(record, self.get(raw, record, "image"))
        width = self.get(raw, record, "width", (int, float))
        height = self.get(raw, record, "height", (int, float))
        if width <= 0 or height <= 0:
            raise self.error(record, "bad_value", f"image size {width}x{height} is not positive")
        pixels = self._pixel_box(record, self.get(raw, record, "bbox", list), width, height)
        norm = to_norm(pixels, width, height)
        if norm[2] <= norm[0] or norm[3] <= norm[1]:
            raise self.error(
                record, "box_degenerate", f"box {pixels} collapses to {norm} in [0, 1000) coordinates"
            )
        prompt = templates.prompt("grounding", self.lang, expression=escape(expression))
        target = format_box(norm) + "</box>"
        # Pickled refs have several sentences each: `ref_id/sentence`; JSON lines: the line's record index.
        sid = f"{raw.get('ref_id')}/{raw['sentence']}" if "sentence" in raw else record
        return self.plain_sample(
            record, sid, "grounding", prompt, target, [image], [], [norm],
            image_size=(width, height), bbox_pixels=pixels, expression=expression,
        )  # fmt: skip

    def _pixel_box(self, record: Any, bbox: list, width: float, height: float) -> tuple[float, ...]:
        """[x, y, w, h] pixels -> (x1, y1, x2, y2) pixels, checked against the image size."""
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise self.error(record, "bad_value", f"bbox should be 4 numbers [x, y, w, h], got {bbox!r:.80}")
        if not all(math.isfinite(v) for v in bbox):
            raise self.error(record, "bad_value", f"bbox {bbox} has non-finite coordinates")
        x, y, w, h = bbox
        if w <= 0 or h <= 0:
            raise self.error(
                record, "box_degenerate", f"bbox {bbox} has no area (w and h must be > 0 pixels)"
            )
        x1, y1, x2, y2 = x, y, x + w, y + h
        t = self.clip_tolerance
        if -t <= x1 and -t <= y1 and x2 <= width + t and y2 <= height + t:
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
        if (why := validate_pixels((x1, y1, x2, y2), width, height)) is not None:
            reason = "box_degenerate" if "degenerate" in why else "box_out_of_range"
            raise self.error(record, reason, f"bbox {bbox} [x, y, w, h]: {why}")
        return (x1, y1, x2, y2)
