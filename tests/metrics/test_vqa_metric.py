"""VQA accuracy: leave-one-out scoring, the official normalization and the three modes."""

import logging

import pytest

from qwenvl.metrics import VQAAccuracy
from qwenvl.metrics.vqa import normalize_answer, process_punctuation, vqa_score


def test_answer_repeated_ten_times():
    assert vqa_score("yes", ["yes"] * 10) == 1.0
    assert vqa_score("no", ["yes"] * 10) == 0.0


def test_leave_one_out_by_position():
    # 3 "yes": dropping a "no" leaves 3 matches (1.0, 7 times), dropping a "yes" leaves 2 (2/3, 3 times)
    assert vqa_score("yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    # 2 "yes": every subset has 1 or 2 matches: (8 * 2/3 + 2 * 1/3) / 10
    assert vqa_score("yes", ["yes"] * 2 + ["no"] * 8) == pytest.approx((8 * 2 / 3 + 2 / 3) / 10)
    assert vqa_score("yes", ["yes"] * 4 + ["no"] * 6) == 1.0


def test_fewer_than_ten_answers():
    assert vqa_score("red", ["red", "red", "red", "blue"]) == pytest.approx((3 * 2 / 3 + 1) / 4)
    assert vqa_score("red", ["red"]) == 0.0  # nobody else said it


@pytest.mark.parametrize(
    ("pred", "answers", "expected"),
    [
        ("2.", ["2"] * 10, {"evalai": 1.0, "vqa_toolkit": 0.0, "qwen_vl": 1.0}),
        ("Two", ["2"] * 10, {"evalai": 1.0, "vqa_toolkit": 0.0, "qwen_vl": 1.0}),
        ("two", ["two"] * 10, {"evalai": 1.0, "vqa_toolkit": 1.0, "qwen_vl": 0.0}),
        ("cat", ["the cat"] * 9 + ["dog"], {"evalai": 1.0, "vqa_toolkit": 1.0, "qwen_vl": 0.0}),
        ("2.", ["2"] * 9 + ["two"], {"evalai": 1.0, "vqa_toolkit": 1.0, "qwen_vl": 1.0}),
        (" Yes\n", ["yes"] * 10, {"evalai": 1.0, "vqa_toolkit": 0.0, "qwen_vl": 1.0}),
    ],
)
def test_modes(pred, answers, expected):
    for mode, value in expected.items():
        assert vqa_score(pred, answers, mode) == pytest.approx(value), mode


def test_official_normalization():
    assert normalize_answer("Two dogs.") == "2 dogs"
    assert normalize_answer("the  red,ball") == "red ball"
    assert normalize_answer("1,000") == "1000"  # digit,digit: punctuation deleted, not spaced
    assert normalize_answer("2.5") == "2.5"  # a period before a digit stays
    assert normalize_answer("dont") == "don't"
    assert normalize_answer("yes!") == "yes"
    assert normalize_answer("none") == "0"
    assert process_punctuation("a-b") == "a b"
    assert process_punctuation("a - b") == "a  b"  # touches a space: deleted
    # the script passes re.UNICODE (32) as `count`: only the first 32 periods go
    assert process_punctuation("." * 40) == "." * 8


def test_metric_average_and_missing_answers(caplog):
    metric = VQAAccuracy()
    with caplog.at_level(logging.WARNING, logger="qwenvl.metrics"):
        metric.update(
            ["yes", "2.", "cat", None], [["yes"] * 10, ["2"] * 10, [], ["x"] * 10], ids=["a", "b", "c", "d"]
        )
    assert "'c'" in caplog.text  # the sample without answers is named
    assert float(metric.compute()) == pytest.approx(0.5)
    toolkit = VQAAccuracy(mode="vqa_toolkit")
    toolkit.update(["yes", "2."], [["yes"] * 10, ["2"] * 10])
    assert float(toolkit.compute()) == pytest.approx(0.5)


def test_duplicate_ids_counted_once():
    metric = VQAAccuracy()
    metric.update(["yes", "no"], [["yes"] * 10, ["yes"] * 10], ids=[1, 2])
    metric.update(["no"], [["yes"] * 10], ids=[2])  # a padded repeat
    assert float(metric.compute()) == pytest.approx(0.5)


def test_rejects_bad_input_naming_the_sample():
    metric = VQAAccuracy()
    with pytest.raises(ValueError, match="'q7'"):
        metric.update([5], [["5"]], ids=["q7"])
    with pytest.raises(ValueError, match="mode"):
        VQAAccuracy(mode="strict")
    assert metric.records == []
