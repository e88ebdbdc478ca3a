from PIL import Image

from qwenvl.boxes import Grounding
from qwenvl.visualize import draw_groundings, side_by_side


def test_boxes_are_drawn_where_they_are_whatever_the_corner_order():
    img = Image.new("RGB", (100, 100), "white")
    out = draw_groundings(img, [Grounding("a", (100, 100, 500, 500)), Grounding(None, (900, 800, 600, 700))])
    assert out.size == img.size and img.getpixel((10, 10)) == (255, 255, 255)
    assert out.getpixel((10, 30)) != (255, 255, 255)  # the left edge of the first box, at x=10 px
    assert out.getpixel((60, 75)) != (255, 255, 255)  # the reversed box is drawn from (60,70) to (90,80)
    assert out.getpixel((40, 40)) == (255, 255, 255)  # inside the box: only the outline is drawn


def test_pictures_side_by_side_keep_their_pixels_and_order():
    a, b = Image.new("RGB", (30, 20), "red"), Image.new("L", (10, 40), 0)
    row = side_by_side([a, b], gap=5)
    assert row.size == (45, 40)
    assert row.getpixel((0, 0)) == (255, 0, 0) and row.getpixel((29, 19)) == (255, 0, 0)
    assert row.getpixel((32, 0)) == (255, 255, 255)  # the gap
    assert row.getpixel((35, 39)) == (0, 0, 0)  # the second picture, converted to RGB
    assert row.getpixel((0, 30)) == (255, 255, 255)  # below the shorter one
