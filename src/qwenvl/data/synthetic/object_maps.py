"""Object maps: what covers each small cell of a synthetic picture, for encoder pretraining.

Qwen-VL starts from an OpenCLIP ViT that already sees shapes. The embedded default has no such
checkpoint, and a random encoder trained through the language loss alone learns colours but not
shapes (docs/pipeline.md). The `objects` stage stands in for that pretraining: the encoder
learns to say, for every cell of every patch, which shape kind, which colour and which text
character covers it, and which shape is centred in it. The labels come from the scene
description, never from the pixels.

Cells: each encoder patch is split into `cells x cells` cells; the label of a cell is the one at
its centre. Four maps per picture, each [patches, cells * cells] (int64):

- `kind`:   0 background, 1..5 the shape kinds in `SHAPES` order, 6 text;
- `colour`: 0 none (background or text), 1..6 the colours in `COLORS` order;
- `char`:   0 none, 1..32 the characters of `TEXT_CHARS` (each character's box);
- `centre`: 0 none, 1..30 the (colour, kind) pair in `PAIRS` order of the shape whose centre lies
  in the cell: one cell per object, so a count of objects is a count of flagged cells.
"""

from __future__ import annotations

import random

import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from qwenvl.data.synthetic.render import font, render
from qwenvl.data.synthetic.scene import Scene, random_pairs, sample_scene
from qwenvl.data.synthetic.vocab import COLORS, PAIRS, SHAPES, TEXT_CHARS

KIND_CLASSES = ["background", *SHAPES, "text"]
COLOUR_CLASSES = ["none", *COLORS]
CHAR_CLASSES = ["none", *TEXT_CHARS]
CENTRE_CLASSES = ["none", *(f"{c} {k}" for c, k in PAIRS)]
TEXT_KIND = KIND_CLASSES.index("text")
MAX_OBJECTS = 4


def _paint(scene: Scene) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Label images (mode L, scene size) of kind, colour and character indices, in drawing order."""
    size = (scene.width, scene.height)
    kind, colour, char = (Image.new("L", size, 0) for _ in range(3))
    draw_kind, draw_colour, draw_char = (ImageDraw.Draw(im) for im in (kind, colour, char))
    colours = list(COLORS)
    for shape in scene.shapes:  # later shapes cover earlier ones, as in render()
        for draw, value in (
            (draw_kind, 1 + SHAPES.index(shape.kind)),
            (draw_colour, 1 + colours.index(shape.color)),
        ):
            if shape.kind == "circle":
                draw.ellipse(shape.box, fill=value)
            else:
                draw.polygon(shape.outline(), fill=value)
    if scene.text is not None:
        t = scene.text
        f = font(t.size)
        for i, ch in enumerate(t.string):
            # Character i starts where the string's first i characters end (the font's advance).
            x = t.x + f.getlength(t.string[:i])
            left, top, right, bottom = f.getbbox(ch)
            box = (x + left, t.y + top, x + right, t.y + bottom)
            draw_kind.rectangle(box, fill=TEXT_KIND)
            draw_colour.rectangle(box, fill=0)
            draw_char.rectangle(box, fill=1 + TEXT_CHARS.index(ch))
    return kind, colour, char


def object_maps(scene: Scene, patch_size: int, cells: int) -> dict[str, torch.Tensor]:
    """`kind`, `colour`, `char` label maps [grid * grid, cells * cells] of a square scene.

    Patches are in the encoder's order (row-major); cells within a patch too. `patch_size` is in
    pixels of the scene; a patch of `patch_size` pixels holds `cells` x `cells` cells.
    """
    if scene.width != scene.height or scene.width % patch_size:
        raise ValueError(
            f"object maps need a square picture whose side is a multiple of the patch size; "
            f"got {scene.width}x{scene.height} px with {patch_size}-px patches"
        )
    grid = scene.width // patch_size
    centres = ((torch.arange(grid * cells) + 0.5) * patch_size / cells).long()  # pixels
    out = {}
    for name, image in zip(("kind", "colour", "char"), _paint(scene), strict=True):
        full = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(scene.height, scene.width)
        sampled = full[centres][:, centres].long()  # [grid * cells, grid * cells]
        out[name] = sampled.view(grid, cells, grid, cells).permute(0, 2, 1, 3).reshape(grid * grid, -1)
    centre = torch.zeros(grid * cells, grid * cells, dtype=torch.long)
    cell = patch_size / cells  # pixels
    for shape in scene.shapes:  # a later shape centred in the same cell replaces an earlier one
        row, col = (min(int(v / cell), grid * cells - 1) for v in (shape.cy, shape.cx))
        centre[row, col] = 1 + PAIRS.index(shape.pair)
    out["centre"] = centre.view(grid, cells, grid, cells).permute(0, 2, 1, 3).reshape(grid * grid, -1)
    return out


class SyntheticObjectMaps(Dataset):
    """`size` pictures of the synthetic world with their object maps; a pure function of (seed, split, index).

    Pictures hold 1-4 shapes of random colour and kind and, with probability `text_ratio`, a text
    string. Items: {"pixel_values": [3, S, S] (through `transform`), "kind"/"colour"/"char":
    [patches, cells * cells]}. `transform` is the model processor's image transform, set by the
    data module (pixels stay a PIL image until then).
    """

    def __init__(
        self,
        seed: int = 0,
        split: str = "train",
        size: int = 100_000,
        image_size: int = 224,
        patch_size: int = 28,
        cells: int = 4,
        text_ratio: float = 0.5,
        transform=None,
        maps: bool = True,
    ):
        if image_size % patch_size or cells < 1 or not 0 <= text_ratio <= 1:
            raise ValueError(
                f"need image_size ({image_size}) a multiple of patch_size ({patch_size}), cells >= 1 "
                f"(got {cells}) and text_ratio in [0, 1] (got {text_ratio})"
            )
        self.seed, self.split, self.size = seed, split, size
        self.image_size, self.patch_size, self.cells = image_size, patch_size, cells
        self.text_ratio, self.transform = text_ratio, transform
        self.maps = maps  # False: pictures alone (the `bridge` stage), without painting the labels

    def __len__(self) -> int:
        return self.size

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} object-map pictures")
        rng = random.Random(f"objects/{self.seed}/{self.split}/{index}")
        pairs = random_pairs(rng, rng.randint(1, MAX_OBJECTS))
        return sample_scene(rng, self.image_size, pairs, rng.random() < self.text_ratio)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene = self.scene(index)
        image = render(scene)
        item = object_maps(scene, self.patch_size, self.cells) if self.maps else {}
        item["pixel_values"] = self.transform(image) if self.transform else image
        return item
