"""Scenes of the synthetic world and their seeded random sampler.

A Scene is 1-4 coloured shapes and, sometimes, a short text string on a light background. All
geometry is in image pixels (floats, top-left origin, boxes `(x1, y1, x2, y2)`). The sampler
takes the objects to place as (colour, shape) pairs, so that tasks can build the scene their
answer needs (e.g. a scene with exactly three stars) and keep answers balanced.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from qwenvl.data.synthetic.render import text_box
from qwenvl.data.synthetic.vocab import PAIRS, SHAPES, TEXT_CHARS, Pair

MIN_SIZE, MAX_SIZE = 0.14, 0.30  # shape size (side of its square extent) as a fraction of the image side
MAX_OVERLAP = 0.2  # a box may cover at most this fraction of a smaller box, so every object stays visible
TEXT_SIZE = (0.11, 0.16)  # font size as a fraction of the image side: ~25-36 px at 224, easy to read
TEXT_LEN = (3, 6)
MARGIN = 2.0  # pixels kept free at the image border and around the text


@dataclass(frozen=True)
class Shape:
    """A filled shape centred at (cx, cy) whose square extent has side `size` (all pixels)."""

    kind: str
    color: str
    cx: float
    cy: float
    size: float

    @property
    def pair(self) -> Pair:
        return (self.color, self.kind)

    def outline(self) -> list[tuple[float, float]]:
        """Polygon vertices in pixels (a circle is approximated; it is drawn as an ellipse)."""
        r, cx, cy = self.size / 2, self.cx, self.cy
        if self.kind == "circle":
            return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in _angles(32, 0.0)]
        if self.kind == "square":
            return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
        if self.kind == "triangle":  # pointing up, base along the bottom edge
            return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
        if self.kind == "star":  # five points, inner radius 45% of the outer one
            radii = [r if i % 2 == 0 else 0.45 * r for i in range(10)]
            return [
                (cx + q * math.cos(a), cy + q * math.sin(a))
                for q, a in zip(radii, _angles(10, -math.pi / 2), strict=True)
            ]
        if self.kind == "cross":  # a plus sign with arms 40% of the size wide
            w = 0.2 * self.size
            return [
                (cx - w, cy - r),
                (cx + w, cy - r),
                (cx + w, cy - w),
                (cx + r, cy - w),
                (cx + r, cy + w),
                (cx + w, cy + w),
                (cx + w, cy + r),
                (cx - w, cy + r),
                (cx - w, cy + w),
                (cx - r, cy + w),
                (cx - r, cy - w),
                (cx - w, cy - w),
            ]
        raise ValueError(f"unknown shape kind {self.kind!r}; expected one of {SHAPES}")

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Tight pixel box of the drawn shape."""
        if self.kind == "circle":
            r = self.size / 2
            return (self.cx - r, self.cy - r, self.cx + r, self.cy + r)
        xs, ys = zip(*self.outline(), strict=True)
        return (min(xs), min(ys), max(xs), max(ys))


def _angles(n: int, start: float) -> list[float]:
    return [start + 2 * math.pi * i / n for i in range(n)]


@dataclass(frozen=True)
class Text:
    """A string drawn with its top-left anchor at (x, y); `box` is its tight pixel box."""

    string: str
    x: float
    y: float
    size: int  # font size in pixels
    color: tuple[int, int, int]
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    """What one picture shows. `shapes` are in drawing order (later ones on top)."""

    width: int
    height: int
    background: tuple[int, int, int]
    shapes: tuple[Shape, ...]
    text: Text | None = None

    def find(self, pair: Pair) -> list[Shape]:
        """Every shape of that colour and kind."""
        return [s for s in self.shapes if s.pair == pair]

    def unique(self, pair: Pair) -> bool:
        return len(self.find(pair)) == 1

    def left_to_right(self) -> list[Shape]:
        """Shapes in reading order: by centre x, then centre y (the canonical order of captions)."""
        return sorted(self.shapes, key=lambda s: (s.cx, s.cy))

    def to_dict(self) -> dict:
        """JSON-able description; boxes in pixels, rounded to 0.01 (the text anchor is exact)."""

        def rnd(box):
            return [round(v, 2) for v in box]

        text = None
        if self.text is not None:
            t = self.text
            # The anchor stays exact: the font renders sub-pixel offsets, so it redraws the same pixels.
            text = {
                "string": t.string,
                "box": rnd(t.box),
                "anchor": [t.x, t.y],
                "size": t.size,
                "color": list(t.color),
            }
        objects = [
            {
                "shape": s.kind,
                "color": s.color,
                "box": rnd(s.box),
                "center": [round(s.cx, 2), round(s.cy, 2)],
                "size": round(s.size, 2),
            }
            for s in self.shapes
        ]
        return {
            "width": self.width,
            "height": self.height,
            "background": list(self.background),
            "objects": objects,
            "text": text,
        }


def relation(a: Shape, b: Shape) -> str | None:
    """Where `a` lies relative to `b` (`left`, `right`, `above`, `below`), or None when unclear.

    Clear means: the boxes are apart along the axis where the centres differ most, so a person
    would agree without hesitation.
    """
    ax1, ay1, ax2, ay2 = a.box
    bx1, by1, bx2, by2 = b.box
    dx, dy = a.cx - b.cx, a.cy - b.cy
    if abs(dx) > abs(dy):
        if ax2 < bx1:
            return "left"
        if bx2 < ax1:
            return "right"
    elif abs(dy) > abs(dx):
        if ay2 < by1:
            return "above"
        if by2 < ay1:
            return "below"
    return None


def random_pairs(rng: random.Random, n: int, avoid=lambda pair: False) -> list[Pair]:
    """`n` (colour, shape) pairs drawn uniformly (with repetition) among those `avoid` allows."""
    allowed = [p for p in PAIRS if not avoid(p)]
    return [rng.choice(allowed) for _ in range(n)]


def random_background(rng: random.Random) -> tuple[int, int, int]:
    """Plain light grey half of the time, else a random light tint (every channel >= 200)."""
    if rng.random() < 0.5:
        g = rng.randint(215, 240)
        return (g, g, g)
    return (rng.randint(200, 250), rng.randint(200, 250), rng.randint(200, 250))


def random_text(rng: random.Random, size: int) -> Text:
    """A 3-6 character string at a random place of a `size`-pixel square image, in a dark colour."""
    string = "".join(rng.choice(TEXT_CHARS) for _ in range(rng.randint(*TEXT_LEN)))
    font_size = max(8, round(size * rng.uniform(*TEXT_SIZE)))
    dark = rng.randint(0, 60)
    color = (dark, dark, dark + rng.randint(0, 40))  # near black: never mistaken for a shape colour
    x1, y1, x2, y2 = text_box(string, font_size, 0, 0)
    x = rng.uniform(MARGIN - x1, size - MARGIN - x2)
    y = rng.uniform(MARGIN - y1, size - MARGIN - y2)
    return Text(string, x, y, font_size, color, text_box(string, font_size, x, y))


def sample_scene(
    rng: random.Random,
    size: int,
    pairs: list[Pair],
    text: bool = False,
    relation_of: tuple[Pair, Pair, str] | None = None,
) -> Scene:
    """Place `pairs` as shapes of random size and position in a `size`-pixel square image.

    With `text`, a random string is placed first and shapes keep clear of it. `relation_of=(a, b,
    rel)` requires the shape of pair `a` to lie clearly at `rel` of the shape of pair `b`. The
    drawing order is shuffled so that no pair is systematically on top.
    """
    background = random_background(rng)
    scale = 1.0
    for attempt in range(1000):
        label = random_text(rng, size) if text else None
        taken = [label.box] if label else []
        shapes: list[Shape] = []
        for pair in pairs:
            shape = _place(rng, size, pair, scale, shapes, taken)
            if shape is None:
                break
            shapes.append(shape)
        else:
            if relation_of is None or _holds(shapes, relation_of):
                rng.shuffle(shapes)
                return Scene(size, size, background, tuple(shapes), label)
        if attempt % 20 == 19:
            scale *= 0.9  # crowded: shrink shapes rather than loop forever
    raise RuntimeError(f"could not place {pairs} (relation {relation_of}) in a {size}px image")


def add_shape(rng: random.Random, scene: Scene, pair: Pair) -> Scene | None:
    """The scene with one more shape placed in free space on top, or None if there is no room."""
    taken = [scene.text.box] if scene.text else []
    for scale in (1.0, 0.8, 0.6):
        shape = _place(rng, scene.width, pair, scale, list(scene.shapes), taken)
        if shape is not None:
            return replace(scene, shapes=scene.shapes + (shape,))
    return None


def _place(rng, size, pair, scale, shapes, taken, tries: int = 50) -> Shape | None:
    for _ in range(tries):
        side = size * rng.uniform(MIN_SIZE, MAX_SIZE) * scale
        lo, hi = side / 2 + MARGIN, size - side / 2 - MARGIN
        shape = Shape(pair[1], pair[0], rng.uniform(lo, hi), rng.uniform(lo, hi), side)
        box = shape.box
        if any(_overlap(_grow(t, MARGIN), box) > 0 for t in taken):
            continue
        if all(_overlap(box, s.box) <= MAX_OVERLAP for s in shapes):
            return shape
    return None


def _holds(shapes: list[Shape], rel: tuple[Pair, Pair, str]) -> bool:
    a, b, want = rel
    sa = next(s for s in shapes if s.pair == a)
    sb = next(s for s in shapes if s.pair == b)
    return relation(sa, sb) == want


def _grow(box, d):
    return (box[0] - d, box[1] - d, box[2] + d, box[3] + d)


def _overlap(a, b) -> float:
    """Intersection area over the smaller box's area (0 when apart)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller
