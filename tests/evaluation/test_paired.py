"""The paired bootstrap (qwenvl.evaluation.paired), its chart and qwenvl-compare."""

import json
import logging
import math
import random

import pytest
from PIL import Image

from qwenvl.cli import compare
from qwenvl.evaluation.paired import (
    _copies,
    by_question_type,
    compare_runs,
    is_by_type,
    pair,
    paired_bootstrap,
    to_markdown,
)


def _vqa(predictions, answers):
    return [
        {"id": f"s{i}", "prediction": p, "answers": [a]}
        for i, (p, a) in enumerate(zip(predictions, answers, strict=True))
    ]


def test_identical_runs_show_no_difference():
    recs = _vqa(["a", "b", "c", "d"] * 5, ["a", "x", "c", "y"] * 5)
    (c,) = paired_bootstrap(recs, recs, ["exact_match"], resamples=200)
    assert (c.a, c.b, c.low, c.high, c.p) == (50.0, 50.0, 0.0, 0.0, 1.0) and c.winner is None


def test_a_run_right_everywhere_beats_one_wrong_everywhere():
    answers = [str(i % 7) for i in range(40)]
    right, wrong = _vqa(answers, answers), _vqa(["no"] * 40, answers)
    (c,) = paired_bootstrap(right, wrong, ["exact_match"], resamples=200)
    assert c.difference == 100.0 and c.low == 100.0 and c.p < 0.01 and c.winner == "a"
    (c,) = paired_bootstrap(wrong, right, ["exact_match"], resamples=200)
    assert c.high == -100.0 and c.winner == "b"


def test_interval_matches_the_normal_approximation_for_accuracy():
    # Per-sample differences d_i in {-1, 0, 1}: the interval of the mean is about mean +- 1.96 sd / sqrt(n).
    rng = random.Random(0)
    n = 400
    answers = ["y"] * n
    a = _vqa(["y" if rng.random() < 0.6 else "n" for _ in range(n)], answers)
    b = _vqa(["y" if rng.random() < 0.5 else "n" for _ in range(n)], answers)
    (c,) = paired_bootstrap(a, b, ["exact_match"], resamples=1000, seed=1)
    d = [100 * ((x["prediction"] == "y") - (y["prediction"] == "y")) for x, y in zip(a, b, strict=True)]
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    assert c.difference == pytest.approx(mean)
    assert c.low == pytest.approx(mean - half, abs=0.2 * half)
    assert c.high == pytest.approx(mean + half, abs=0.2 * half)


def test_lower_is_better_metrics_flip_the_verdict():
    refs = ["HELLO"] * 30
    close = [{"id": i, "prediction": "HELLO", "answers": [r]} for i, r in enumerate(refs)]
    far = [{"id": i, "prediction": "XYZ", "answers": [r]} for i, r in enumerate(refs)]
    cer = {c.metric: c for c in paired_bootstrap(close, far, ["cer"], resamples=100)}["cer"]
    assert cer.difference < 0 and cer.high < 0 and cer.winner == "a"  # A has fewer errors: A better


def test_corpus_metrics_are_rescored_per_draw_with_every_copy_kept():
    recs = [{"id": "x", "prediction": "p"}, {"id": "y", "prediction": "q"}]
    copies = _copies(recs, [1, 1, 0])
    assert [c["prediction"] for c in copies] == ["q", "q", "p"] and len({c["id"] for c in copies}) == 3
    # CIDEr's document frequencies come from each draw: the run still scores and the interval holds it
    caps = ["a red circle", "a blue star", "two green squares", "a purple hexagon"] * 4
    a = [{"id": i, "prediction": c, "answers": [c]} for i, c in enumerate(caps)]
    b = [{"id": i, "prediction": "a shape", "answers": [c]} for i, c in enumerate(caps)]
    (c,) = paired_bootstrap(a, b, ["cider"], resamples=50)
    assert c.a > c.b and c.low <= c.difference <= c.high and c.winner == "a"


def test_pairs_by_id_and_names_the_problem_when_nothing_is_shared(caplog):
    a = [{"id": 1, "prediction": "a"}, {"id": 2, "prediction": "b"}, {"id": 3, "prediction": "c"}]
    b = [{"id": 3, "prediction": "C"}, {"id": 1, "prediction": "A"}, {"id": 9, "prediction": "Z"}]
    with caplog.at_level(logging.WARNING):
        pa, pb = pair(a, b, "bench")
    assert [r["id"] for r in pa] == [1, 3] and [r["prediction"] for r in pb] == ["A", "C"]
    assert "2 samples are in only one of the runs" in caplog.text
    with pytest.raises(ValueError, match="no sample id in common"):
        pair(a, [{"id": 7}], "bench")


def _eval_dir(path, predictions, answers, scoring=True, protocol="default", kinds=None):
    """A directory as qwenvl-eval writes it, for synthetic_vqa (exact_match)."""
    (path / "predictions").mkdir(parents=True)
    recs = _vqa(predictions, answers)
    for rec, kind in zip(recs, kinds or [], strict=False):
        rec["question_type"] = kind
    (path / "predictions" / "synthetic_vqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    result = {"metrics": {}, "samples": len(recs)}
    if scoring:
        result["scoring"] = {"metrics": ["exact_match"], "extra": {}}
    run = {"model": {"name": path.name}, "protocol": protocol, "benchmarks": {"synthetic_vqa": result}}
    (path / "results.json").write_text(json.dumps(run))
    return path


def test_compare_runs_reads_eval_directories_old_and_new(tmp_path):
    answers = ["yes", "no"] * 20
    a = _eval_dir(tmp_path / "a", answers, answers)
    b = _eval_dir(tmp_path / "b", ["yes"] * 40, answers, scoring=False)  # written before scoring was kept
    (c,) = compare_runs(a, b, resamples=100)
    assert (c.benchmark, c.metric, c.a, c.b, c.winner) == ("synthetic_vqa", "acc", 100.0, 50.0, "a")
    table = to_markdown([c], "mine", "theirs")
    assert "| synthetic_vqa | acc | 100 | 50 | 50 |" in table and "mine better" in table
    with pytest.raises(ValueError, match="not in both"):
        compare_runs(a, b, benchmarks=["synthetic_caption"])
    (b / "predictions" / "synthetic_vqa.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="synthetic_vqa.jsonl is missing"):
        compare_runs(a, b)


def test_runs_scored_differently_are_not_compared(tmp_path):
    a = _eval_dir(tmp_path / "a", ["yes"], ["yes"])
    b = _eval_dir(tmp_path / "b", ["yes"], ["yes"])
    res = json.loads((b / "results.json").read_text())
    res["benchmarks"]["synthetic_vqa"]["scoring"]["metrics"] = ["vqa_acc"]
    (b / "results.json").write_text(json.dumps(res))
    with pytest.raises(ValueError, match="scored differently"):
        compare_runs(a, b)


def test_cli_writes_table_json_and_chart(tmp_path, capsys):
    answers = [str(i % 5) for i in range(30)]
    a = _eval_dir(tmp_path / "a", answers, answers)
    b = _eval_dir(tmp_path / "b", ["0"] * 30, answers)
    out = tmp_path / "report"
    rc = compare.main([str(a), str(b), "--names", "tuned", "base", "--resamples", "100", "--out", str(out)])
    assert rc == 0 and "tuned better" in capsys.readouterr().out
    saved = json.loads((out / "compare.json").read_text())["comparisons"]
    assert saved[0]["winner"] == "a" and saved[0]["difference"] == pytest.approx(80.0)
    with Image.open(out / "compare.png") as im:
        assert im.width > 500 and len(set(im.convert("L").getdata())) > 10  # drawn, not blank
    assert compare.main([str(tmp_path / "nowhere"), str(b)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_chart_draws_an_interval_that_leaves_out_the_observed_difference(tmp_path):
    from qwenvl.evaluation.paired import Comparison
    from qwenvl.evaluation.paired_chart import forest_png

    odd = Comparison("b", "acc", a=10.0, b=2.0, low=9.0, high=12.0, p=0.0, samples=5, resamples=50)
    tie = Comparison("b", "cer", a=0.5, b=0.5, low=0.0, high=0.0, p=1.0, samples=5, resamples=50)
    assert odd.winner == "a" and tie.winner is None
    with Image.open(forest_png([odd, tie], tmp_path / "f.png")) as im:
        assert im.height > 100
    with pytest.raises(ValueError, match="no comparisons"):
        forest_png([], tmp_path / "g.png")


def test_by_type_compares_each_question_type_alone(tmp_path):
    # A reads colours (right on all of them) and guesses counts like B; B is wrong on colours.
    answers = ["red", "2"] * 20
    kinds = ["colour", "count"] * 20
    a = _eval_dir(tmp_path / "a", ["red", "3"] * 20, answers, kinds=kinds)
    b = _eval_dir(tmp_path / "b", ["blue", "3"] * 20, answers)  # an older file: no question types
    whole, colour, count = compare_runs(a, b, resamples=200, by_type=True)
    assert whole.benchmark == "synthetic_vqa" and whole.difference == 50.0 and whole.samples == 40
    assert (colour.benchmark, colour.a, colour.b, colour.winner) == ("synthetic_vqa[colour]", 100.0, 0.0, "a")
    assert (count.benchmark, count.a, count.b, count.winner) == ("synthetic_vqa[count]", 0.0, 0.0, None)
    assert colour.samples == count.samples == 20
    assert [is_by_type(c) for c in (whole, colour, count)] == [False, True, True]
    assert len(compare_runs(a, b, resamples=20)) == 1  # off unless asked


def test_by_type_leaves_benchmarks_without_types_whole():
    recs = _vqa(["a", "b"], ["a", "b"])
    assert by_question_type(recs, recs) == {}
    one = [{**r, "question_type": "colour"} for r in recs]
    assert by_question_type(one, one) == {}  # one type would repeat the whole benchmark


def test_cli_by_type_adds_a_row_per_question_type(tmp_path, capsys):
    answers, kinds = ["red", "2"] * 10, ["colour", "count"] * 10
    a = _eval_dir(tmp_path / "a", answers, answers, kinds=kinds)
    b = _eval_dir(tmp_path / "b", ["blue", "2"] * 10, answers, kinds=kinds)
    assert compare.main([str(a), str(b), "--resamples", "50", "--by-type"]) == 0
    out = capsys.readouterr().out
    assert "| synthetic_vqa[colour] | acc | 100 | 0 |" in out
    assert "| synthetic_vqa[count] | acc | 100 | 100 |" in out
    saved = [c["benchmark"] for c in json.loads((a / "compare.json").read_text())["comparisons"]]
    assert saved == ["synthetic_vqa", "synthetic_vqa[colour]", "synthetic_vqa[count]"]
