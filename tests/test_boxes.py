import pytest

from qwenvl import boxes
from qwenvl.boxes import Grounding


def test_pixel_norm_round_trip_within_one_unit():
    w, h = 640, 480
    px = (12.0, 40.0, 300.5, 479.0)
    norm = boxes.to_norm(px, w, h)
    assert all(0 <= v < 1000 for v in norm)
    back = boxes.to_pixels(norm, w, h)
    for a, b, size in zip(px, back, (w, h, w, h), strict=True):
        assert abs(a - b) <= size / 1000 + 1e-9


def test_to_norm_clips_to_999_and_rejects_empty_image():
    assert boxes.to_norm((0, 0, 640, 480), 640, 480) == (0, 0, 999, 999)
    with pytest.raises(ValueError, match="positive"):
        boxes.to_norm((0, 0, 1, 1), 0, 10)


def test_format_and_parse_round_trip_with_several_boxes():
    text = boxes.format_ref("two dogs", [(1, 2, 3, 4), (10, 20, 30, 40)])
    assert text == "<ref>two dogs</ref><box>(1,2),(3,4)</box><box>(10,20),(30,40)</box>"
    assert boxes.parse(text) == [Grounding("two dogs", (1, 2, 3, 4)), Grounding("two dogs", (10, 20, 30, 40))]


def test_format_ref_escapes_tag_strings_from_data():
    text = boxes.format_ref("a <box> sign", [(1, 2, 3, 4)])
    assert "a \\<box> sign" in text


def test_format_box_rejects_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        boxes.format_box((0, 0, 1000, 5))


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "no boxes here",
        "<box>(1,2),(3,",
        "<ref>x</ref><box>(a,b),(c,d)</box>",
        "<box></box><box>",
        "((((((",
        "<ref><ref></ref>",
        None,
        "<box>(1,2)</box>",
    ],
)
def test_parse_junk_yields_no_box_and_no_exception(junk):
    assert boxes.parse(junk) == []


def test_parse_tolerates_spaces_unclosed_tail_and_bare_boxes():
    assert boxes.parse("<ref>cat</ref><box>( 1 , 2 ) , ( 3 , 4 )") == [Grounding("cat", (1, 2, 3, 4))]
    assert boxes.first_box("the answer is (100,200),(300,400)") == (100, 200, 300, 400)
    assert boxes.first_box("<box>(5,6),(7,8)</box><box>(1,1),(2,2)</box>") == (5, 6, 7, 8)
    assert boxes.parse("<box>(1200,5),(3,4)</box>") == [Grounding(None, (999, 5, 3, 4))]


def test_validate_pixels_names_the_problem():
    assert boxes.validate_pixels((0, 0, 10, 10), 20, 20) is None
    assert "degenerate" in boxes.validate_pixels((5, 5, 5, 9), 20, 20)
    assert "outside" in boxes.validate_pixels((0, 0, 30, 10), 20, 20)
