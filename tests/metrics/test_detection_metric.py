"""COCO mAP of grounded captions through pycocotools."""

import pytest

from qwenvl.boxes import format_ref
from qwenvl.metrics import GroundedCaptionMAP

TARGETS = [[("dog", (100, 100, 400, 400)), ("cat", (500, 500, 900, 900))], [("red ball", (0, 0, 200, 200))]]


def test_perfect_text_predictions():
    metric = GroundedCaptionMAP()
    metric.update(
        [
            "A <ref>dog</ref><box>(100,100),(400,400)</box> next to"
            " a <ref>cat</ref><box>(500,500),(900,900)</box>",
            "<ref>Red  Ball</ref><box>(0,0),(200,200)</box>",  # labels compare case/space-insensitively
        ],
        TARGETS,
        ids=["img1", "img2"],
    )
    out = metric.compute()
    assert float(out["map"]) == pytest.approx(1.0)
    assert float(out["map_50"]) == pytest.approx(1.0)
    assert float(out["mar_100"]) == pytest.approx(1.0)


def test_wrong_labels_boxes_and_misses():
    metric = GroundedCaptionMAP()
    metric.update(
        [
            [("cat", (100, 100, 400, 400), 0.9), ("dog", (600, 600, 700, 700), 0.8)],  # swapped labels
            "no boxes at all",
        ],
        TARGETS,
    )
    out = metric.compute()
    assert float(out["map"]) == pytest.approx(0.0)
    assert float(out["mar_100"]) == pytest.approx(0.0)


def test_half_right():
    metric = GroundedCaptionMAP()
    metric.update([[("dog", (100, 100, 400, 400))], [("red ball", (0, 0, 200, 200))]], TARGETS)
    out = metric.compute()
    # dog: AP 1, cat: missed (AP 0), red ball: AP 1
    assert float(out["map"]) == pytest.approx(2 / 3, abs=1e-6)


def test_image_sizes_only_change_area_ranges():
    preds = [[("dog", (100, 100, 400, 400)), ("cat", (500, 500, 900, 900))], [("red ball", (0, 0, 200, 200))]]
    plain, sized = GroundedCaptionMAP(), GroundedCaptionMAP()
    plain.update(preds, TARGETS)
    sized.update(preds, TARGETS, image_sizes=[(64, 48), (640, 480)])
    a, b = plain.compute(), sized.compute()
    assert float(a["map"]) == float(b["map"]) == pytest.approx(1.0)
    assert float(b["map_small"]) == pytest.approx(1.0)  # 19x14 px boxes are "small" in COCO terms
    assert float(a["map_small"]) == -1.0


def test_no_targets_and_chinese_labels():
    empty = GroundedCaptionMAP()
    empty.update(["<ref>狗</ref><box>(1,1),(5,5)</box>"], [[]])
    assert float(empty.compute()["map"]) == -1.0
    zh = GroundedCaptionMAP()
    zh.update(["<ref>狗</ref><box>(1,1),(500,500)</box>"], [[("狗", (1, 1, 500, 500))]])
    assert float(zh.compute()["map"]) == pytest.approx(1.0)


def test_bad_inputs_name_the_sample():
    metric = GroundedCaptionMAP()
    with pytest.raises(ValueError, match="'s1'"):
        metric.update(["x"], [[("", (0, 0, 1, 1))]], ids=["s1"])
    with pytest.raises(ValueError, match="'s2'"):
        metric.update([[("dog", (0, 0, 1))]], [[("dog", (0, 0, 1, 1))]], ids=["s2"])
    assert metric.records == []


def test_escaped_ref_text_matches_the_raw_label():
    text = format_ref("a <b> tag", [(10, 10, 500, 500)])  # written as "a \<b> tag"
    metric = GroundedCaptionMAP()
    metric.update([text], [[("a <b> tag", (10, 10, 500, 500))]])
    assert float(metric.compute()["map"]) == pytest.approx(1.0)
