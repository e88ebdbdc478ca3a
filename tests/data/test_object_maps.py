"""Object maps of synthetic pictures: labels from the scene, in the encoder's patch order."""

from __future__ import annotations

import numpy as np
import pytest

from qwenvl.data.synthetic.object_maps import (
    CENTRE_CLASSES,
    CHAR_CLASSES,
    COLOUR_CLASSES,
    KIND_CLASSES,
    SyntheticObjectMaps,
    object_maps,
)
from qwenvl.data.synthetic.render import (
    render,
    text_box,  # noqa: I001
)
from qwenvl.data.synthetic.scene import Scene, Shape, Text
from qwenvl.data.synthetic.vocab import COLORS


def _full(maps, grid: int, cells: int) -> np.ndarray:
    """[patches, cells^2] back to the picture's cell grid [grid * cells, grid * cells]."""
    return maps.view(grid, grid, cells, cells).permute(0, 2, 1, 3).reshape(grid * cells, -1).numpy()


def test_a_square_covers_exactly_the_cells_whose_centres_lie_inside_it():
    square = Shape("square", "blue", cx=70.0, cy=42.0, size=40.0)  # box (50, 22) - (90, 62) px
    scene = Scene(112, 112, (230, 230, 230), (square,))
    maps = object_maps(scene, patch_size=28, cells=4)  # 4x4 patches of 4x4 cells of 7 px
    assert maps["kind"].shape == (16, 16)
    kind, colour = _full(maps["kind"], 4, 4), _full(maps["colour"], 4, 4)
    centres = (np.arange(16) + 0.5) * 7
    inside = ((centres >= 50) & (centres < 90))[None, :] & ((centres >= 22) & (centres < 62))[:, None]
    assert (kind == np.where(inside, KIND_CLASSES.index("square"), 0)).all()
    assert (colour == np.where(inside, COLOUR_CLASSES.index("blue"), 0)).all()
    assert (maps["char"] == 0).all()
    # patch order is the encoder's (row-major), cells too: the square's top-left cell (row 3,
    # col 7, centre (52.5, 24.5) px) is cell (3, 3) of patch (0, 1); patch (0, 0) holds none of it
    assert maps["kind"][0 * 4 + 1, 3 * 4 + 3] == KIND_CLASSES.index("square")
    assert maps["kind"][0 * 4 + 1].count_nonzero() == 1 and maps["kind"][0].count_nonzero() == 0


def test_the_centre_map_flags_one_cell_per_object_with_its_colour_and_kind():
    shapes = (
        Shape("square", "blue", cx=70.0, cy=42.0, size=40.0),  # centre in cell (row 6, col 10)
        Shape("star", "red", cx=20.0, cy=90.0, size=30.0),  # cell (12, 2)
    )
    maps = object_maps(Scene(112, 112, (230, 230, 230), shapes), patch_size=28, cells=4)
    centre = _full(maps["centre"], 4, 4)
    assert np.count_nonzero(centre) == 2
    assert CENTRE_CLASSES[centre[6, 10]] == "blue square" and CENTRE_CLASSES[centre[12, 2]] == "red star"


def test_text_cells_name_their_character_and_shapes_on_top_win():
    string, size = "AK7", 40
    box = text_box(string, size, 10, 60)
    text = Text(string, 10, 60, size, (20, 20, 20), box)
    under = Shape("circle", "red", cx=40.0, cy=30.0, size=40.0)
    top = Shape("triangle", "green", cx=45.0, cy=30.0, size=30.0)
    scene = Scene(112, 112, (230, 230, 230), (under, top), text)
    maps = object_maps(scene, patch_size=28, cells=4)
    kind, char = _full(maps["kind"], 4, 4), _full(maps["char"], 4, 4)
    text_cells = kind == KIND_CLASSES.index("text")
    assert text_cells.any() and (char[text_cells] > 0).all() and (char[~text_cells] == 0).all()
    read = [CHAR_CLASSES[c] for c in char[text_cells]]
    assert set(read) == set(string)
    # the first character's cells lie left of the last one's
    cols = np.nonzero(text_cells)[1]
    a_cols = cols[np.array(read) == "A"]
    seven_cols = cols[np.array(read) == "7"]
    assert a_cols.mean() < seven_cols.mean()
    # the triangle is drawn after the circle: the cell at its centre is the triangle's
    centre = _full(maps["kind"], 4, 4)[int(30 // 7), int(45 // 7)]
    assert KIND_CLASSES[centre] == "triangle"


def test_maps_agree_with_the_rendered_pixels():
    ds = SyntheticObjectMaps(seed=3, split="train", size=20, image_size=224, patch_size=28, cells=4)
    rgb = {i + 1: np.array(c) for i, c in enumerate(COLORS.values())}
    for i in range(20):
        scene = ds.scene(i)
        pixels = np.asarray(render(scene))
        maps = object_maps(scene, 28, 4)
        colour = _full(maps["colour"], 8, 4)
        centres = ((np.arange(32) + 0.5) * 7).astype(int)
        at = pixels[centres][:, centres]  # [32, 32, 3] the pixel at each cell centre
        for c, value in rgb.items():
            # every cell labelled with a colour shows it at its centre (shapes have no anti-aliasing)
            assert (at[colour == c] == value).all()


def test_items_are_a_pure_function_of_seed_split_and_index():
    a = SyntheticObjectMaps(seed=1, split="train", size=10)
    b = SyntheticObjectMaps(seed=1, split="train", size=10)
    val = SyntheticObjectMaps(seed=1, split="val", size=10)
    assert a.scene(4) == b.scene(4) and a.scene(4) != val.scene(4)
    item = a[4]
    assert item["pixel_values"].size == (224, 224)  # no transform: a PIL picture
    assert (
        item["kind"].shape == item["colour"].shape == item["char"].shape == item["centre"].shape == (64, 16)
    )
    with pytest.raises(IndexError, match="out of range"):
        a.scene(10)


def test_bad_geometry_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        SyntheticObjectMaps(image_size=224, patch_size=30)
    scene = Scene(100, 100, (230, 230, 230), ())
    with pytest.raises(ValueError, match="multiple of the patch size"):
        object_maps(scene, 28, 4)
