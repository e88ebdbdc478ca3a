"""Grounding accuracy: box parsing through qwenvl.boxes, scaling, IoU thresholds, unparsed outputs."""

import pytest

from qwenvl.metrics import GroundingAccuracy
from qwenvl.metrics.grounding import box_iou


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 0, 10), (0, 0, 10, 10)) == 0.0  # degenerate prediction


def test_text_predictions_scaled_to_the_image():
    metric = GroundingAccuracy(thresholds=(0.5, 0.75))
    metric.update(
        [
            "<ref>the dog</ref><box>(100,200),(500,600)</box>",  # -> (50, 40, 250, 120): exact
            "(0,0),(500,500)",  # bare box -> (0, 0, 100, 50): half the target -> IoU 0.5
            "I cannot see it",  # unparsed
        ],
        [(50, 40, 250, 120), (0, 0, 100, 100), (0, 0, 10, 10)],
        image_sizes=[(500, 200), (200, 100), (100, 100)],
        ids=["r1", "r2", "r3"],
    )
    out = metric.compute()
    assert set(out) == {"acc@0.5", "acc@0.75", "miou", "unparsed"}
    assert float(out["acc@0.5"]) == pytest.approx(2 / 3)
    assert float(out["acc@0.75"]) == pytest.approx(1 / 3)
    assert float(out["miou"]) == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert float(out["unparsed"]) == 1.0


def test_scale_999_reproduces_qwen_vl():
    # Qwen-VL's script divides by 999: (999, 999) is the far corner of the image
    text = "<box>(0,0),(999,999)</box>"
    qwen = GroundingAccuracy(scale=999)
    qwen.update([text], [(0, 0, 640, 480)], image_sizes=[(640, 480)])
    assert float(qwen.compute()["miou"]) == pytest.approx(1.0)
    ours = GroundingAccuracy()
    ours.update([text], [(0, 0, 640, 480)], image_sizes=[(640, 480)])
    assert float(ours.compute()["miou"]) == pytest.approx(0.999**2)


def test_pixel_box_predictions_and_threshold_zero_still_misses_unparsed():
    metric = GroundingAccuracy(thresholds=(0.0, 0.5))
    metric.update([(0, 0, 10, 10), None], [(0, 0, 10, 20), (0, 0, 5, 5)], ids=[1, 2])
    out = metric.compute()
    assert float(out["acc@0"]) == 0.5  # the unparsed one is a miss even at IoU >= 0
    assert float(out["acc@0.5"]) == 0.5
    assert float(out["unparsed"]) == 1.0


def test_duplicate_ids_counted_once():
    metric = GroundingAccuracy()
    metric.update([(0, 0, 10, 10), (0, 0, 1, 1)], [(0, 0, 10, 10), (0, 0, 10, 10)], ids=["a", "b"])
    metric.update([(0, 0, 1, 1)], [(0, 0, 10, 10)], ids=["b"])
    assert float(metric.compute()["acc@0.5"]) == 0.5


def test_bad_inputs_name_the_sample():
    metric = GroundingAccuracy()
    with pytest.raises(ValueError, match="'t1'.*empty"):
        metric.update([(0, 0, 1, 1)], [(5, 5, 5, 9)], ids=["t1"])
    with pytest.raises(ValueError, match="'t2'.*image_sizes"):
        metric.update(["(1,1),(2,2)"], [(0, 0, 9, 9)], ids=["t2"])
    with pytest.raises(ValueError, match="'t3'"):
        metric.update([(0, 0, 1)], [(0, 0, 9, 9)], ids=["t3"])
    with pytest.raises(ValueError, match="'t4'.*image size"):
        metric.update(["(1,1),(2,2)"], [(0, 0, 9, 9)], image_sizes=[(0, 5)], ids=["t4"])
    with pytest.raises(ValueError, match="thresholds"):
        GroundingAccuracy(thresholds=(1.5,))
    assert metric.records == []
