"""ANLS, ChartQA relaxed accuracy, exact match and the re-exported error rates."""

import logging

import pytest
import torchmetrics.text

from qwenvl.metrics import ANLS, CharErrorRate, ExactMatch, RelaxedAccuracy, WordErrorRate
from qwenvl.metrics.ocr import anls_similarity, levenshtein, relaxed_match


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("中文", "中午") == 1


def test_anls_exactly_one_half_is_kept():
    # distance 1 over length 2: similarity exactly 0.5, kept (the threshold is inclusive)
    assert anls_similarity("ab", "ac") == 0.5
    # below 0.5 becomes 0: distance 2 over length 3
    assert anls_similarity("abc", "axy") == 0.0
    assert anls_similarity("abcd", "abxd") == 0.75


def test_anls_normalizes_case_and_white_space():
    assert anls_similarity("  Total   AMOUNT ", "total amount") == 1.0
    assert anls_similarity("", "") == 1.0
    assert anls_similarity("", "x") == 0.0


def test_anls_metric_takes_the_best_answer(caplog):
    metric = ANLS()
    with caplog.at_level(logging.WARNING, logger="qwenvl.metrics"):
        metric.update(["ab", "Paris", "x"], [["zz", "ac"], "paris", []], ids=["p1", "p2", "p3"])
    assert "'p3'" in caplog.text
    assert float(metric.compute()) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_relaxed_accuracy_zero_target_needs_exact_zero():
    assert relaxed_match("0", "0")
    assert relaxed_match("0.0", "0")
    assert not relaxed_match("0.01", "0")
    assert not relaxed_match("zero", "0")


def test_relaxed_accuracy_numbers_percent_and_strings():
    assert relaxed_match("105", "100")  # 5% exactly
    assert not relaxed_match("105.1", "100")
    assert relaxed_match("-98", "-100")
    assert relaxed_match("50%", "0.5")  # "%" read as /100 on both sides
    assert relaxed_match("0.51", "50%")
    assert relaxed_match(" Yes ", "yes")
    assert not relaxed_match("1,000", "1000")  # not a number: compared as text
    metric = RelaxedAccuracy()
    metric.update(["12", "blue", None], ["12.5", ["Red", "Blue"], "3"], ids=[1, 2, 3])
    assert float(metric.compute()) == pytest.approx(2 / 3)


def test_exact_match():
    metric = ExactMatch()
    metric.update(["New  York", "london", "中文"], ["new york", "Paris", ["中文"]])
    assert float(metric.compute()) == pytest.approx(2 / 3)
    strict = ExactMatch(case_sensitive=True)
    strict.update(["New York"], ["new york"])
    assert float(strict.compute()) == 0.0


def test_error_rates_are_torchmetrics():
    assert CharErrorRate is torchmetrics.text.CharErrorRate
    assert WordErrorRate is torchmetrics.text.WordErrorRate
    assert float(WordErrorRate()(["a b c"], ["a b d"])) == pytest.approx(1 / 3)


def test_rejects_non_string_answers():
    metric = ANLS()
    with pytest.raises(ValueError, match="'doc-9'"):
        metric.update(["a"], [[1.5]], ids=["doc-9"])
