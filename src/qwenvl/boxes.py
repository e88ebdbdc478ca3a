"""Boxes as Qwen-VL writes them: `<ref>text</ref><box>(x1,y1),(x2,y2)</box>`.

Pixel boxes are `(x1, y1, x2, y2)` floats in image pixels, top-left origin, x2/y2 exclusive.
Normalized boxes are integers in [0, 1000): `round(x / width * 1000)` clipped to 999, the
convention of the Qwen-VL paper. Formatting happens here once; parsing happens here once.

    >>> to_norm((10, 20, 110, 220), 200, 400)
    (50, 50, 550, 550)
    >>> format_ref("the red circle", [(50, 50, 550, 550)])
    '<ref>the red circle</ref><box>(50,50),(550,550)</box>'
    >>> parse("<ref>a</ref><box>(1,2),(3,4)</box> junk <box>(5,6)")
    [Grounding(ref='a', box=(1, 2, 3, 4))]
"""

from __future__ import annotations

import re
from typing import NamedTuple

from qwenvl.tokenizer import escape

SCALE = 1000  # coordinates live in [0, SCALE)


class Grounding(NamedTuple):
    """One parsed box. `ref` is the text of the preceding `<ref>`, or None; `box` is normalized ints."""

    ref: str | None
    box: tuple[int, int, int, int]


def to_norm(box: tuple[float, float, float, float], width: float, height: float) -> tuple[int, int, int, int]:
    """Pixel box -> normalized integer box in [0, 1000). Raises ValueError on an empty image size."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    x1, y1, x2, y2 = box
    scaled = (x1 / width, y1 / height, x2 / width, y2 / height)
    return tuple(min(SCALE - 1, max(0, round(v * SCALE))) for v in scaled)  # type: ignore[return-value]


def to_pixels(
    box: tuple[int, int, int, int], width: float, height: float, scale: float = SCALE
) -> tuple[float, float, float, float]:
    """Normalized box -> pixel box. `scale=999` reproduces Qwen-VL's own grounding evaluation."""
    x1, y1, x2, y2 = box
    return (x1 / scale * width, y1 / scale * height, x2 / scale * width, y2 / scale * height)


def validate_pixels(box: tuple[float, float, float, float], width: float, height: float) -> str | None:
    """Why a pixel box is unusable (out of image, degenerate), or None when it is fine."""
    x1, y1, x2, y2 = box
    if not all(v == v for v in box):  # NaN never equals itself
        return f"box {box} has NaN coordinates"
    if x2 <= x1 or y2 <= y1:
        return f"box {box} is degenerate (needs x1 < x2 and y1 < y2)"
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        return f"box {box} lies outside the {width}x{height} image"
    return None


def format_box(box: tuple[int, int, int, int]) -> str:
    """`(x1,y1),(x2,y2)` for one normalized box."""
    x1, y1, x2, y2 = (int(v) for v in box)
    for v in (x1, y1, x2, y2):
        if not 0 <= v < SCALE:
            raise ValueError(f"normalized coordinate {v} outside [0, {SCALE}) in box {box}")
    return f"({x1},{y1}),({x2},{y2})"


def format_ref(ref: str | None, boxes: list[tuple[int, int, int, int]]) -> str:
    """Markup `<ref>ref</ref><box>..</box><box>..</box>`; the ref text is escaped (it comes from data)."""
    head = "" if ref is None else f"<ref>{escape(ref)}</ref>"
    return head + "".join(f"<box>{format_box(b)}</box>" for b in boxes)


_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_PAIR = rf"\({_NUM},{_NUM}\)"
_BOX_RE = re.compile(rf"{_PAIR}\s*,?\s*{_PAIR}")
_TAG_RE = re.compile(r"<ref>(.*?)</ref>|<box>(.*?)(?:</box>|$)", re.S)


def _coords(text: str) -> tuple[int, int, int, int] | None:
    m = _BOX_RE.search(text)
    if m is None:
        return None
    return tuple(min(SCALE - 1, max(0, int(float(v)))) for v in m.groups())  # type: ignore[return-value]


def parse(text: str) -> list[Grounding]:
    """Every well-formed box in model output, paired with the most recent `<ref>` text.

    Tolerant by design: unclosed tags, junk and half-written boxes yield no box, never an
    exception. A bare `(x1,y1),(x2,y2)` with no `<box>` tag is accepted when the text has no
    tags at all, since models often drop them.
    """
    if not isinstance(text, str):
        return []
    out: list[Grounding] = []
    ref: str | None = None
    for m in _TAG_RE.finditer(text):
        if m.group(1) is not None:
            ref = m.group(1).strip()
        elif (box := _coords(m.group(2) or "")) is not None:
            out.append(Grounding(ref, box))
    if not out and "<box>" not in text and (box := _coords(text)) is not None:
        out.append(Grounding(None, box))
    return out


def first_box(text: str) -> tuple[int, int, int, int] | None:
    """The first parsable normalized box in `text`, or None."""
    found = parse(text)
    return found[0].box if found else None
