"""Pictures people would rather look at than read: boxes drawn on images."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from qwenvl.boxes import Grounding, to_pixels

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]


def draw_groundings(
    image: Image.Image, groundings: list[Grounding], scale: float = 1000, colours: list | None = None
) -> Image.Image:
    """A copy of `image` with each normalized box drawn in pixels and labelled with its ref text.

    `colours`: one colour per grounding (a Pillow colour: name, "#rrggbb" or an RGB tuple); by
    default they cycle through PALETTE.
    """
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=max(10, out.height // 30))
    line = max(2, out.width // 150)
    for i, g in enumerate(groundings):
        colour = colours[i] if colours else PALETTE[i % len(PALETTE)]
        x1, y1, x2, y2 = to_pixels(g.box, out.width, out.height, scale)
        # A model may write its corners in any order: draw the box they span.
        x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        if g.ref:
            tx, ty = x1 + line, max(0, y1 - font.size - 2)
            draw.rectangle(draw.textbbox((tx, ty), g.ref, font=font), fill=colour)
            draw.text((tx, ty), g.ref, fill="white", font=font)
    return out


def side_by_side(images: list[Image.Image], gap: int = 8) -> Image.Image:
    """The pictures in a row on white, `gap` pixels apart, each at its own size (top-aligned)."""
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    out = Image.new("RGB", (width, max(im.height for im in images)), "white")
    x = 0
    for im in images:
        out.paste(im.convert("RGB"), (x, 0))
        x += im.width + gap
    return out
