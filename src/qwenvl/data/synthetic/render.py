"""Draw a Scene as an RGB PIL image. All coordinates are image pixels, top-left origin.

Shapes are filled polygons/ellipses without anti-aliasing, so every shape pixel carries its
colour's exact RGB value (tests rely on that to check boxes against pixels). Text uses Pillow's
built-in font, so no font file is needed: `ImageFont.load_default(size=...)` (Pillow >= 10.1 with
FreeType) gives a scalable font; otherwise the small bitmap font is drawn and scaled up.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from qwenvl.data.synthetic.vocab import COLORS

if TYPE_CHECKING:
    from qwenvl.data.synthetic.scene import Scene

_BITMAP_HEIGHT = 11  # cap height in pixels of Pillow's bitmap default font, used to scale it


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font at `size` pixels, or the bitmap font if it cannot scale."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def _scalable(f) -> bool:
    return isinstance(f, ImageFont.FreeTypeFont)


def text_box(string: str, size: int, x: float, y: float) -> tuple[float, float, float, float]:
    """Pixel box `(x1, y1, x2, y2)` of `string` drawn with its top-left anchor at (x, y)."""
    f = font(size)
    if _scalable(f):
        l, t, r, b = f.getbbox(string)
        return (x + l, y + t, x + r, y + b)
    l, t, r, b = f.getbbox(string)
    scale = size / _BITMAP_HEIGHT
    return (x + l * scale, y + t * scale, x + r * scale, y + b * scale)


def _draw_text(img: Image.Image, string: str, size: int, xy: tuple[float, float], fill) -> None:
    f = font(size)
    if _scalable(f):
        ImageDraw.Draw(img).text(xy, string, font=f, fill=fill)
        return
    # Bitmap fallback: draw at native size into a mask, enlarge it, then stamp the colour.
    l, t, r, b = f.getbbox(string)
    mask = Image.new("L", (r, b))
    ImageDraw.Draw(mask).text((0, 0), string, font=f, fill=255)
    scale = size / _BITMAP_HEIGHT
    mask = mask.resize((max(1, round(r * scale)), max(1, round(b * scale))), Image.Resampling.NEAREST)
    img.paste(Image.new("RGB", mask.size, fill), (round(xy[0]), round(xy[1])), mask)


def render(scene: Scene) -> Image.Image:
    """The scene as an RGB image of `scene.width` x `scene.height` pixels."""
    img = Image.new("RGB", (scene.width, scene.height), scene.background)
    draw = ImageDraw.Draw(img)
    for shape in scene.shapes:  # list order is drawing order: later shapes cover earlier ones
        fill = COLORS[shape.color]
        if shape.kind == "circle":
            draw.ellipse(shape.box, fill=fill)
        else:
            draw.polygon(shape.outline(), fill=fill)
    if scene.text is not None:
        _draw_text(img, scene.text.string, scene.text.size, (scene.text.x, scene.text.y), scene.text.color)
    return img
