"""A benchmark's first predictions as one picture: each sample's image(s), the model's boxes in red
and the reference boxes in green, the question, the model's answer and the reference below.

A score says how often a model is right; the gallery shows how it is wrong (a constant box, the
same caption for every picture, an answer in the wrong style) at a glance. `qwenvl-eval` writes
`gallery/<benchmark>.png` beside `results.json`.

Text is drawn with Pillow's built-in font, which has no CJK glyphs: Chinese text shows as boxes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from qwenvl.boxes import Grounding, parse
from qwenvl.data.sample import Sample
from qwenvl.metrics.grounding import box_iou
from qwenvl.visualize import draw_groundings

log = logging.getLogger(__name__)

CELL = 240  # side of a sample's picture area, pixels
TEXT_LINES = 7  # lines of text under each picture
FONT_SIZE = 12
GAP = 6  # pixels between the pictures of one sample, and between cards
MODEL, TRUTH, INK = (200, 30, 30), (20, 130, 40), (30, 30, 30)


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _prompt(sample: Sample) -> str:
    """What was asked, in words: the question, the referring expression, or the task name."""
    meta = sample.meta or {}
    for key in ("question", "expression"):
        if meta.get(key):
            return str(meta[key])
    return sample.task.replace("_", " ")


def _slot(n: int, side: int, gap: int) -> int:
    """Width in pixels of each of `n` pictures side by side in a `side` square, `gap` pixels apart."""
    return (side - gap * (n - 1)) // max(1, n)


def _fit(images: list[Image.Image], side: int, gap: int = GAP) -> list[Image.Image]:
    """The pictures of a sample scaled to share a `side` square side by side, `gap` pixels apart."""
    slot = _slot(len(images), side, gap)
    out = []
    for im in images:
        scale = min(slot / im.width, side / im.height)
        out.append(im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale)))))
    return out


def _pictures(fitted: list[Image.Image], side: int, gap: int = GAP) -> Image.Image:
    """`_fit`'s pictures pasted side by side, centred in their slots, on a white `side` square."""
    out = Image.new("RGB", (side, side), "white")
    if not fitted:
        ImageDraw.Draw(out).text((8, side // 2), "(no picture)", fill=INK, font=_font())
        return out
    slot = _slot(len(fitted), side, gap)
    for i, im in enumerate(fitted):
        out.paste(im, (i * (slot + gap) + (slot - im.width) // 2, (side - im.height) // 2))
    return out


def _lines(text: str, prefix: str, width: int, font, most: int) -> list[str]:
    """`prefix + text` wrapped to `width` pixels, at most `most` lines (the last cut with '…')."""
    words = f"{prefix}{text}".split()  # newlines and runs of spaces as one space
    lines: list[str] = []
    for word in words:
        while font.getlength(word) > width:  # a word wider than the card is cut where it must be
            cut = max(1, next(i for i in range(len(word), 0, -1) if font.getlength(word[:i]) <= width))
            lines.append(word[:cut])
            word = word[cut:]
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    lines = lines or [prefix.strip()]
    if len(lines) > most:
        lines = lines[:most]
        while lines[-1] and font.getlength(lines[-1] + "…") > width:
            lines[-1] = lines[-1][:-1]
        lines[-1] += "…"
    return lines


def card(sample: Sample, record: dict, load: Callable[[object], Image.Image] = lambda im: im) -> Image.Image:
    """One sample: the picture(s) with boxes drawn, then question, model answer and reference.

    `record` is the sample's line of the predictions JSONL (`prediction`, `answers`, `boxes` in
    [0, 1000)); `load` turns an entry of `sample.images` (a PIL image or a path) into a PIL image.
    Boxes are drawn on the first picture.
    """
    try:
        # scaled first, so that box lines and labels are drawn at the size they are seen
        images = _fit([load(im) for im in sample.images], CELL)
    except Exception as e:  # an unreadable picture costs its card's picture, not the gallery
        images, note = [], f"picture unreadable: {type(e).__name__}: {e}"
    else:
        note = ""
    predicted = parse(record.get("prediction") or "")
    truth = [tuple(b) for b in record.get("boxes") or []]
    if images and (predicted or truth):
        drawn = [Grounding("truth", b) for b in truth] + [Grounding("model", g.box) for g in predicted]
        colours = [TRUTH] * len(truth) + [MODEL] * len(predicted)
        images[0] = draw_groundings(images[0], drawn, colours=colours)
    font = _font()
    line_h = FONT_SIZE + 3
    out = Image.new("RGB", (CELL, CELL + TEXT_LINES * line_h + 6), "white")
    out.paste(_pictures(images, CELL), (0, 0))
    answer = record.get("prediction") or "(nothing)"
    if predicted and len(truth) == 1:  # one referent: what a grounding metric scores
        answer += f"  IoU {box_iou(predicted[0].box, truth[0]):.2f}"
    reference = "; ".join(record.get("answers") or []) or ", ".join(str(list(b)) for b in truth) or "—"
    width = CELL - 8
    rows = [(line, INK) for line in _lines(note or _prompt(sample), "", width, font, 2)]
    rows += [(line, MODEL) for line in _lines(answer, "model: ", width, font, 3)]
    room = max(1, TEXT_LINES - len(rows))
    rows += [(line, TRUTH) for line in _lines(reference, "truth: ", width, font, room)]
    draw = ImageDraw.Draw(out)
    for i, (line, colour) in enumerate(rows[:TEXT_LINES]):
        draw.text((4, CELL + 3 + i * line_h), line, fill=colour, font=font)
    return out


def gallery(cards: Sequence[Image.Image], title: str, columns: int = 4) -> Image.Image:
    """Cards in a grid under a title line; an empty list gives the title alone."""
    columns = max(1, min(columns, len(cards) or 1))
    rows = -(-len(cards) // columns)
    w, h = cards[0].size if cards else (CELL, 0)
    head = FONT_SIZE * 2 + 8
    pad = GAP
    out = Image.new("RGB", (columns * (w + pad) + pad, head + rows * (h + pad) + pad), (235, 235, 235))
    ImageDraw.Draw(out).text((pad, 6), title, fill=INK, font=_font(FONT_SIZE + 4))
    for i, c in enumerate(cards):
        out.paste(c, (pad + (i % columns) * (w + pad), head + (i // columns) * (h + pad)))
    return out


def write_gallery(
    samples: Sequence[Sample],
    records: Sequence[dict],
    path: Path,
    title: str,
    load: Callable[[object], Image.Image] = lambda im: im,
    columns: int = 4,
) -> Path | None:
    """Save the gallery of `samples` that have a record (paired by id) as a PNG at `path`.

    Returns the path, or None when no sample had a record (nothing is written then).
    """
    by_id = {r.get("id"): r for r in records}
    pairs = [(s, by_id[s.id]) for s in samples if s.id in by_id]
    if not pairs:
        log.warning("gallery %s: none of the %d samples has a prediction; not written", path, len(samples))
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gallery([card(s, r, load) for s, r in pairs], title, columns).save(path)
    return path
