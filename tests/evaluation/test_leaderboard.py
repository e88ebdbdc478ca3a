"""Leaderboards from results.json files: naming, best markers, references, writers, CLI, Hydra callback."""

import csv
import json
import logging
import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from PIL import Image

from qwenvl.evaluation import (
    ResultsError,
    build_leaderboard,
    find_results,
    load_references,
    load_results,
    lower_is_better,
)
from qwenvl.evaluation.hydra_callback import LeaderboardCallback


def write_run(run_dir, benchmarks, overrides=None, hydra_overrides=None):
    """A run directory as an evaluation run leaves it: results.json, optionally .hydra/overrides.yaml."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "model": {"name": "tiny", "ckpt": "last.ckpt", "parameters": 123},
        "config": {"seed": 1},
        "benchmarks": {b: {"metrics": m, "samples": 10, "seconds": 1.5} for b, m in benchmarks.items()},
        "created": "2026-11-26T12:00:00",
    }
    if overrides is not None:
        data["overrides"] = overrides
    if hydra_overrides is not None:
        (run_dir / ".hydra").mkdir(exist_ok=True)
        (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in hydra_overrides))
    (run_dir / "results.json").write_text(json.dumps(data))
    return run_dir / "results.json"


@pytest.fixture
def two_runs(tmp_path):
    write_run(
        tmp_path / "a",
        {"synthetic_vqa": {"vqa_acc": 71.2, "unparsed": 3.0}, "vqav2_testdev": {"vqa_acc": 50.0}},
        overrides=["adapter.num_queries=64", "seed=1"],
    )
    write_run(
        tmp_path / "b",
        {"synthetic_vqa": {"vqa_acc": 65.0, "unparsed": 1.0}, "vqav2_testdev": {"vqa_acc": 55.5}},
        overrides=["adapter.num_queries=256", "seed=1"],
    )
    return [load_results(p) for p in find_results([tmp_path])]


def test_rows_are_named_by_the_differing_override_and_best_follows_metric_direction(two_runs):
    board = build_leaderboard(two_runs)
    assert [r.name for r in board.rows] == ["adapter.num_queries=64", "adapter.num_queries=256"]
    assert board.shared_overrides == ["seed=1"]
    assert board.columns == ["synthetic_vqa/vqa_acc", "synthetic_vqa/unparsed", "vqav2_testdev/vqa_acc"]
    assert board.best == {
        "synthetic_vqa/vqa_acc": {"adapter.num_queries=64"},  # higher is better
        "synthetic_vqa/unparsed": {"adapter.num_queries=256"},  # lower is better
        "vqav2_testdev/vqa_acc": {"adapter.num_queries=256"},
    }
    md = board.to_markdown()
    # One precision per column, as many decimals as its values need.
    assert "| `adapter.num_queries=64` | **71.2** | 3 | 50.0 |" in md
    assert "| `adapter.num_queries=256` | 65.0 | **1** | **55.5** |" in md
    assert "`seed=1`" in md  # shared overrides are listed once, above the table


def test_metric_direction_is_read_from_name_tokens():
    for name in ["cer", "wer", "val_loss", "unparsed", "unparsed_rate", "x/loss"]:
        assert lower_is_better(name), name
    for name in ["vqa_acc", "cider", "acc@0.5", "anls", "answer_acc", "relaxed_acc"]:
        assert not lower_is_better(name), name


def test_writes_markdown_csv_html_and_a_readable_png(two_runs, tmp_path):
    out = tmp_path / "board"
    written = build_leaderboard(two_runs, load_references("qwen_vl")).write_all(out)
    assert {p.name for p in written.values()} == {f"leaderboard.{s}" for s in ("md", "csv", "html", "png")}
    assert all(p.is_file() and p.stat().st_size > 0 for p in written.values())

    with written["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["kind"]) for r in rows] == [
        ("adapter.num_queries=64", "run"),
        ("adapter.num_queries=256", "run"),
        ("Qwen-VL (paper)", "reference"),
    ]
    assert float(rows[0]["synthetic_vqa/vqa_acc"]) == 71.2 and rows[2]["synthetic_vqa/vqa_acc"] == ""

    page = written["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<script" not in page
    assert "<strong>71.2</strong>" in page and 'class="reference"' in page

    with Image.open(written["png"]) as img:
        img.load()
        width, height = img.size
    assert 600 <= width <= 8000 and 400 <= height <= 6000


def test_reference_rows_are_appended_and_never_best(two_runs):
    board = build_leaderboard(two_runs, load_references("qwen_vl"))
    ref = board.rows[-1]
    assert ref.reference and ref.name == "Qwen-VL (paper)"
    # Only the columns the runs report: the paper's VQAv2 number, none for the synthetic benchmark.
    assert ref.values == {"vqav2_testdev/vqa_acc": 78.8}
    assert ref.values["vqav2_testdev/vqa_acc"] > max(r.values["vqav2_testdev/vqa_acc"] for r in board.runs)
    assert board.best["vqav2_testdev/vqa_acc"] == {"adapter.num_queries=256"}
    assert not any(board.is_best(ref, c) for c in board.columns)
    md = board.to_markdown()
    assert "| *Qwen-VL (paper)* † | – | – | 78.8 |" in md and "Bai et al., 2023" in md


def test_reference_file_holds_the_paper_numbers():
    (ref,) = load_references("qwen_vl")
    assert "Bai et al., 2023" in ref.source and "Qwen-VL" in ref.source
    expected = {
        "nocaps_val/cider": 121.4,
        "flickr30k_test/cider": 85.8,
        "vqav2_testdev/vqa_acc": 78.8,
        "docvqa_test/anls": 65.1,
        "chartqa_test/relaxed_acc": 65.7,
        "ai2d_test/acc": 62.3,
        "refcoco_val/acc@0.5": 89.36,
        "refcocoplus_testb/acc@0.5": 77.21,
        "refcocog_test/acc@0.5": 85.48,
    }
    assert {k: ref.values[k] for k in expected} == expected
    assert len(ref.values) == 20
    assert load_references("none") == [] and load_references(None) == []


def test_multirun_jobs_take_their_names_from_hydra_overrides(tmp_path):
    sweep = tmp_path / "multirun" / "2026-11-26" / "12-00-00"
    for job in range(11):  # 11 jobs: job 10 must sort after job 2
        write_run(
            sweep / str(job),
            {"synthetic_vqa": {"vqa_acc": float(job)}},
            hydra_overrides=[f"adapter.num_queries={16 * (job + 1)}", "seed=1"],
        )
    paths = find_results([tmp_path / "multirun"])
    assert [p.parent.name for p in paths] == [str(j) for j in range(11)]
    runs = [load_results(p) for p in paths]
    assert runs[0].overrides == ["adapter.num_queries=16", "seed=1"]
    board = build_leaderboard(runs)
    assert board.rows[2].name == "adapter.num_queries=48"
    assert board.best["synthetic_vqa/vqa_acc"] == {"adapter.num_queries=176"}


def test_runs_without_differing_overrides_are_named_by_directory(tmp_path):
    write_run(tmp_path / "baseline", {"b": {"acc": 1.0}}, overrides=["seed=1"])
    write_run(tmp_path / "rerun", {"b": {"acc": 2.0}}, overrides=["seed=1"])
    board = build_leaderboard([load_results(p) for p in find_results(tmp_path)])
    assert [r.name for r in board.rows] == ["baseline", "rerun"]


def test_benchmark_filter_keeps_only_the_named_benchmarks(two_runs):
    board = build_leaderboard(two_runs, benchmarks=["vqav2_testdev"])
    assert board.columns == ["vqav2_testdev/vqa_acc"]
    with pytest.raises(ValueError, match="nope"):
        build_leaderboard(two_runs, benchmarks=["nope"])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"model": {"name": "x"}, "benchmarks": {', "not valid JSON"),
        ('{"benchmarks": {}}', "missing key 'model'"),
        ('{"model": {"name": "x"}}', "missing key 'benchmarks'"),
        (
            '{"model": {"name": "x"}, "benchmarks": {"vqa": {"samples": 3}}}',
            "benchmarks.vqa: missing key 'metrics'",
        ),
        ('{"model": {"name": "x"}, "benchmarks": {"vqa": {"metrics": {"acc": "high"}}}}', "metrics.acc"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_results_name_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(ResultsError) as err:
        load_results(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "qwenvl.cli.leaderboard", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_fails_clearly_on_a_directory_without_results(tmp_path):
    (tmp_path / "empty").mkdir()
    r = _cli(tmp_path / "empty", cwd=tmp_path)
    assert r.returncode != 0
    assert "no results.json found under" in r.stderr and str(tmp_path / "empty") in r.stderr


def test_cli_prints_the_table_and_writes_the_files(two_runs, tmp_path):
    r = _cli(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out", "--references", "none", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| `adapter.num_queries=64` | **71.2** |" in r.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "leaderboard.csv",
        "leaderboard.html",
        "leaderboard.md",
        "leaderboard.png",
    ]


def test_hydra_callback_writes_the_leaderboard_into_the_sweep_dir(tmp_path, caplog):
    sweep = tmp_path / "multirun" / "2026-11-26" / "12-00-00"
    write_run(sweep / "0", {"vqav2_testdev": {"vqa_acc": 40.0}}, hydra_overrides=["lr=1e-4"])
    write_run(sweep / "1", {"vqav2_testdev": {"vqa_acc": 45.0}}, hydra_overrides=["lr=3e-4"])
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with caplog.at_level(logging.INFO, logger="qwenvl.evaluation.hydra_callback"):
        LeaderboardCallback().on_multirun_end(config)
    for suffix in ("md", "csv", "html", "png"):
        assert (sweep / f"leaderboard.{suffix}").is_file(), suffix
    md = (sweep / "leaderboard.md").read_text()
    assert "| `lr=3e-4` | **45.0** |" in md and "Qwen-VL (paper)" in md
    assert str(sweep) in caplog.text


def test_hydra_callback_never_raises(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    write_run(sweep / "0", {"b": {"acc": 1.0}})
    write_run(sweep / "1", {"b": {"acc": 2.0}})
    with caplog.at_level(logging.WARNING):
        # A reference file that does not exist makes building fail: logged, not raised.
        LeaderboardCallback(references="no_such_reference").on_multirun_end(
            OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
        )
        LeaderboardCallback().on_multirun_end(OmegaConf.create({}))  # no hydra.sweep.dir at all
        LeaderboardCallback().on_multirun_end(
            OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "x")}}})
        )
    assert "no_such_reference" in caplog.text
    assert not (sweep / "leaderboard.md").exists()


HYDRA_APP = """
import json

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig

callbacks = {"leaderboard": {"_target_": "qwenvl.evaluation.hydra_callback.LeaderboardCallback"}}
ConfigStore.instance().store(name="cfg", node={"q": 1, "seed": 0, "hydra": {"callbacks": callbacks}})


@hydra.main(version_base="1.3", config_path=None, config_name="cfg")
def main(cfg):
    score = {"metrics": {"vqa_acc": 10.0 * cfg.q + cfg.seed}}
    results = {"model": {"name": "t"}, "benchmarks": {"vqav2_testdev": score}}
    with open(HydraConfig.get().runtime.output_dir + "/results.json", "w") as f:
        json.dump(results, f)


main()
"""


def test_hydra_callback_runs_at_the_end_of_a_real_multirun(tmp_path):
    (tmp_path / "app.py").write_text(HYDRA_APP)
    sweep = tmp_path / "sweep"
    r = subprocess.run(
        [sys.executable, "app.py", "-m", "q=1,2", "seed=7", f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    md = (sweep / "leaderboard.md").read_text()
    assert "`seed=7`" in md and "| `q=2` | **27.0** |" in md and "Qwen-VL (paper)" in md
    assert (sweep / "leaderboard.png").is_file()


def test_scores_that_are_not_like_for_like_get_a_note(tmp_path):
    write_run(tmp_path / "a", {"synthetic_vqa": {"vqa_acc": 71.2}, "synthetic_ocr": {"cer": 0.5}}, ["seed=1"])
    write_run(tmp_path / "b", {"synthetic_vqa": {"vqa_acc": 65.0}, "synthetic_ocr": {"cer": 0.4}}, ["seed=2"])
    assert build_leaderboard([load_results(p) for p in find_results([tmp_path])]).notes == []
    data = json.loads((tmp_path / "b" / "results.json").read_text())
    data["benchmarks"]["synthetic_vqa"]["samples"] = 200  # a run scored with another limit
    data["protocol"] = "qwen_vl"
    (tmp_path / "b" / "results.json").write_text(json.dumps(data))
    board = build_leaderboard([load_results(p) for p in find_results([tmp_path])])
    assert board.notes == [
        "synthetic_vqa: the runs scored different numbers of samples (10, 200), not like for like.",
        "The runs used different evaluation protocols (default, qwen_vl), not like for like.",
    ]
    assert board.notes[0] in board.to_markdown()
