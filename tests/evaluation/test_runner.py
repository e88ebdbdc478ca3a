import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from qwenvl.data.sample import Message, Sample
from qwenvl.data.synthetic.questions import ASK_KINDS
from qwenvl.evaluation import runner
from qwenvl.evaluation.benchmark import Benchmark, load_benchmark
from qwenvl.evaluation.scoring import score
from qwenvl.paths import ROOT

BENCH_DIR = ROOT / "evaluation" / "benchmarks"


def test_every_benchmark_file_loads():
    for path in sorted(BENCH_DIR.glob("*.yaml")):
        if path.stem.startswith("synthetic"):
            b = load_benchmark(path.stem, BENCH_DIR, image_size=224, data_root="/nonexistent")
            assert len(b) == 500 and b.metrics
        else:  # real datasets are not here: the file must name a loader and metrics that exist
            from omegaconf import OmegaConf

            from qwenvl.evaluation.scoring import SCORERS

            spec = OmegaConf.load(path)
            assert spec.name == path.stem and all(m in SCORERS for m in spec.metrics)
            module, cls = spec.dataset._target_.rsplit(".", 1)
            assert hasattr(__import__(module, fromlist=[cls]), cls), spec.dataset._target_


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(FileNotFoundError, match="synthetic_vqa"):
        load_benchmark("nope", BENCH_DIR, image_size=224)


def test_runs_scores_and_resumes_an_interrupted_evaluation(model, proc, tmp_path, monkeypatch):
    bench = load_benchmark("synthetic_vqa", BENCH_DIR, image_size=224)
    bench.limit = 8
    first = runner.run_benchmark(model, proc, bench, tmp_path, batch_size=4)
    assert first["samples"] == 8 and "acc" in first["metrics"]
    path = tmp_path / "predictions" / "synthetic_vqa.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:10])  # killed mid-write
    calls = []
    original = runner._generate
    monkeypatch.setattr(runner, "_generate", lambda *a: calls.append(len(a[3])) or original(*a))
    again = runner.run_benchmark(model, proc, bench, tmp_path, batch_size=4)
    assert sum(calls) == 5  # only the unfinished samples are generated again
    ids = [
        json.loads(x)["id"] for x in path.read_text().splitlines() if x.startswith("{") and x.endswith("}")
    ]
    assert len(set(ids)) == 8 and again["metrics"] == first["metrics"]
    # each record keeps the world's question kind, for scores split by question type
    kinds = {json.loads(x)["question_type"] for x in path.read_text().splitlines()}
    assert kinds <= set(ASK_KINDS) | {"relation_yn"} and kinds and None not in kinds


class _WithBadImage:
    def __init__(self, good):
        self.good = good

    def __len__(self):
        return 3

    def __getitem__(self, i):
        if i == 1:
            return Sample(
                "vqa",
                [Message("user", "Q? Answer:", 1), Message("assistant", "a")],
                ["/no/such.png"],
                answers=["a"],
                id="bad",
            )
        return self.good[i]


def test_a_bad_image_is_a_counted_miss_not_a_crash(model, proc, tmp_path):
    good = load_benchmark("synthetic_vqa", BENCH_DIR, image_size=224).dataset
    bench = Benchmark("mixed", _WithBadImage(good), ["exact_match"], max_new_tokens=3)
    result = runner.run_benchmark(model, proc, bench, tmp_path)
    records = runner.read_predictions(tmp_path / "predictions" / "mixed.jsonl")
    assert result["samples"] == 3
    assert [r for r in records if r["id"] == "bad"][0]["error"].startswith("FileNotFoundError")


def test_multiple_choice_picks_an_offered_letter(model, proc):
    img = Image.new("RGB", (32, 32), "red")
    sample = Sample(
        "vqa", [Message("user", "Which?\nA. red\nB. blue\nC. green Answer:", 1)], [img], answers=["A"], id="q"
    )
    bench = Benchmark("mc", [sample], ["choice_acc"], kind="choice", postprocess="strip")
    record = runner._generate(model, proc, bench, [sample])[0]
    assert record["prediction"] in {"A", "B", "C"}
    assert score([record], ["choice_acc"])["acc"] in (0.0, 100.0)


def test_eval_cli_writes_results_that_a_leaderboard_reads(model, proc, tmp_path, run_app):
    from qwenvl.cli import eval as eval_cli

    model.save_pretrained(tmp_path / "m")
    proc.save_pretrained(tmp_path / "m")
    for run in ("a", "b"):
        r = run_app(
            eval_cli.main,
            f"ckpt={tmp_path / 'm'}",
            "limit=4",
            "benchmarks=[synthetic_vqa,synthetic_grounding]",
            f"hydra.run.dir={tmp_path / run}",
            f"batch_size={2 if run == 'a' else 4}",
        )
        assert r.code == 0, r.err[-2000:]
    report = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(report["benchmarks"]) == {"synthetic_vqa", "synthetic_grounding"}
    for name in report["benchmarks"]:  # a picture of the first predictions beside the scores
        assert Image.open(tmp_path / "a" / "gallery" / f"{name}.png").width > 4 * 200
    from qwenvl.evaluation.leaderboard import build_leaderboard
    from qwenvl.evaluation.results import find_results, load_results

    board = build_leaderboard([load_results(p) for p in find_results([tmp_path])])
    assert len(board.rows) == 2


def test_qwen_vl_protocol_uses_the_released_scripts_prompts(proc):
    from qwenvl.data.templates import render
    from qwenvl.evaluation.protocol import apply_protocol

    cap = apply_protocol(load_benchmark("synthetic_caption", BENCH_DIR, image_size=224), "qwen_vl")
    prompt = "".join(s.markup for s in render(cap.dataset[0], cap.fmt, with_target=False))
    assert prompt == "<img></img>Describe the image in English:"
    assert (cap.min_new_tokens, cap.max_new_tokens) == (8, 30)
    grd = apply_protocol(load_benchmark("synthetic_grounding", BENCH_DIR, image_size=224), "qwen_vl")
    prompt = "".join(s.markup for s in render(grd.dataset[0], grd.fmt, with_target=False))
    assert prompt.startswith("<img></img><ref>") and prompt.endswith("</ref><box>")
    assert grd.extra["box_scale"] == 999 and grd.max_new_tokens == 28
    assert proc.count_images(prompt) == 1


def test_two_processes_share_the_work_and_give_the_single_process_result(model, proc, tmp_path):
    model.save_pretrained(tmp_path / "m")
    proc.save_pretrained(tmp_path / "m")
    args = [f"ckpt={tmp_path / 'm'}", "limit=6", "benchmarks=[synthetic_vqa]", "batch_size=2"]
    one = [sys.executable, "-m", "qwenvl.cli.eval", *args, f"hydra.run.dir={tmp_path / 'one'}"]
    two = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free port for the rendezvous: tests run side by side under pytest-xdist
        "--nproc_per_node",
        "2",
        "-m",
        "qwenvl.cli.eval",
        *args,
        f"hydra.run.dir={tmp_path / 'two'}",
    ]
    for cmd in (one, two):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = (
        sorted((tmp_path / d / "predictions" / "synthetic_vqa.jsonl").read_text().splitlines())
        for d in ("one", "two")
    )
    assert a == b and len(a) == 6
    assert not list((tmp_path / "two" / "predictions").glob("*.rank*.jsonl"))  # merged and removed
    ra, rb = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    assert ra["benchmarks"]["synthetic_vqa"]["metrics"] == rb["benchmarks"]["synthetic_vqa"]["metrics"]


def test_a_checkpoint_that_is_not_there_or_not_a_model_is_named_with_what_to_pass(tmp_path):
    from qwenvl.evaluation.load import load_for_eval

    def refusal(path, error=FileNotFoundError) -> str:
        with pytest.raises(error) as e:
            load_for_eval(path)
        assert "pass a save_pretrained or released Qwen-VL directory" in str(e.value)
        return str(e.value)

    assert f"ckpt={tmp_path / 'nope'}: no such file or directory" in refusal(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "a directory without config.json;" in refusal(tmp_path / "empty")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch=0.ckpt").touch()
    (tmp_path / "checkpoints" / "last.ckpt").touch()
    assert "it holds epoch=0.ckpt, last.ckpt: pass one of them" in refusal(tmp_path / "checkpoints")
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a checkpoint torch can read with weights_only=True" in refusal(
        tmp_path / "notes.txt", ValueError
    )
    torch.save({"weight": torch.zeros(2)}, tmp_path / "weights.pt")
    assert "not a training checkpoint (no hyper_parameters" in refusal(tmp_path / "weights.pt", ValueError)
    sharded = tmp_path / "run" / "checkpoints" / "last.ckpt"  # as trainer=fsdp lays it out
    sharded.mkdir(parents=True)
    torch.save({"global_step": 2}, sharded / "meta.pt")
    with pytest.raises(ValueError, match="a sharded FSDP checkpoint") as e:
        load_for_eval(sharded)
    assert f"ckpt={sharded.parent / 'last.model'}" in str(e.value)
