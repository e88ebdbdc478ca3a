"""The main job end to end with a tiny step budget, and the W&B offline run it logs to."""

import json
import subprocess
import sys

import torch

from qwenvl.cli import pipeline


def test_pipeline_chains_every_stage_and_evaluates(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "qwenvl.cli.pipeline",
        f"hydra.run.dir={tmp_path}",
        "logger=none",
        "steps.objects=3",
        "steps.warmup=3",
        "steps.pretrain=3",
        "steps.multitask_224=3",
        "steps.multitask=3",
        "steps.sft=3",
        "data.batch_size=2",
        "data.val.size=4",
        "eval.limit=4",
        "eval.gap_tasks=[caption,vqa]",
        "eval.gap_samples=4",
        "eval.resamples=20",
        "eval.benchmarks=[synthetic_vqa,synthetic_grounding]",
        "callbacks.progress=null",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["stages"]) == ["objects", "warmup", "pretrain", "multitask_224", "multitask", "sft"]
    for name, stage in summary["stages"].items():
        assert stage["train/loss_first"] > 0 and stage["val/loss"] > 0
        if name == "objects":  # the encoder alone: accuracies on object maps, no answers to gap
            assert "val/acc_shape" in stage and not any(k.startswith("gap/") for k in stage)
        else:
            assert set(stage) >= {"gap/caption", "gap/vqa", "gap/caption:colour", "gap/caption:shape"}
    for key in ("with_images", "swapped", "blind"):  # the right pictures, then each control
        assert set(summary["evaluation"][key]) == {"synthetic_vqa", "synthetic_grounding"}
    table = (tmp_path / "summary.md").read_text()
    assert "| sft |" in table and "gap vqa" in table
    # against each control: every metric of both benchmarks with its paired-bootstrap interval
    assert list(summary["evaluation"]["paired"]) == ["swapped", "grey"]
    for control, name, chart in (
        ("swapped", "swapped pictures", "eval_vs_swapped.png"),
        ("grey", "blind (grey images)", "eval_vs_blind.png"),
    ):
        paired = summary["evaluation"]["paired"][control]
        assert {(c["benchmark"], c["metric"]) for c in paired} >= {
            ("synthetic_vqa", "acc"),
            ("synthetic_grounding", "acc@0.5"),
        }
        assert all(c["low"] <= c["high"] for c in paired)
        assert all(c["samples"] == 4 for c in paired if not c["benchmark"].endswith("]"))
        assert f"With images against {name}" in table and (tmp_path / chart).is_file()
        # VQA also per question type (colour, count, ...), in its own table
        by_type = [c for c in paired if c["benchmark"].startswith("synthetic_vqa[")]
        assert by_type and sum(c["samples"] for c in by_type) == 4
    assert "95 % interval" in table and "per question type" in table and "| synthetic_vqa[" in table
    # the swapped run showed each sample the next one's pictures, and says so in its records
    swapped = [json.loads(x) for x in (tmp_path / "eval_swapped/predictions/synthetic_vqa.jsonl").open()]
    assert [r["pictures_of"] for r in swapped] == [r["id"] for r in swapped[1:] + swapped[:1]]
    for run in ("eval", "eval_swapped", "eval_blind"):  # each benchmark's first predictions, drawn
        assert (tmp_path / run / "gallery" / "synthetic_grounding.png").is_file()
    assert "| objects |" in table and "val acc shape" in table
    assert "losses.png" in table and (tmp_path / "losses.png").is_file()
    # each stage started from the previous one's checkpoint
    assert (tmp_path / "5_multitask" / "checkpoints" / "last.ckpt").is_file()
    # per_stage: the slower encoder reached `multitask` alone; multitask_224 ran at 224 px, encoder frozen
    records = {
        n: json.loads((tmp_path / f"{i}_{n}" / "stage.json").read_text())
        for i, n in ((4, "multitask_224"), (5, "multitask"))
    }
    assert "stage.lr_scale.encoder=0.1" in records["multitask"]["overrides"]
    assert not any("lr_scale" in o for o in records["multitask_224"]["overrides"])
    hp = {
        n: torch.load(r["metrics"]["checkpoint"], weights_only=True, map_location="cpu")["hyper_parameters"]
        for n, r in records.items()
    }
    assert (
        hp["multitask"]["stage"]["lr_scale"]["encoder"] == 0.1
        and hp["multitask"]["stage"]["image_size"] == 448
    )
    assert hp["multitask_224"]["stage"]["image_size"] == 224
    assert hp["multitask_224"]["stage"]["trainable"]["encoder"] is False


def test_a_bridge_between_resolutions_chains_and_keeps_the_image_gap(tmp_path):
    cmd = [sys.executable, "-m", "qwenvl.cli.pipeline", f"hydra.run.dir={tmp_path}", "logger=none"]
    cmd += ["stages=[warmup,bridge,multitask]", "steps.warmup=3", "+steps.bridge=3", "steps.multitask=2"]
    cmd += ["data.batch_size=2", "data.val.size=4", "eval.limit=4", "eval.gap_tasks=[caption]"]
    cmd += ["eval.gap_samples=4", "eval.resamples=20", "eval.benchmarks=[synthetic_vqa]"]
    cmd += ["eval.controls=[swapped]", "callbacks.progress=null"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    bridge = summary["stages"]["bridge"]
    # its loss is the relative error of the image tokens; the gap shows the LLM reading them at 448 px
    assert 0 < bridge["train/loss_first"] < 2 and "gap/caption" in bridge
    hp = {
        n: torch.load(tmp_path / f"{i}_{n}/checkpoints/last.ckpt", weights_only=True, map_location="cpu")
        for i, n in ((2, "bridge"), (3, "multitask"))
    }
    assert hp["bridge"]["hyper_parameters"]["stage"]["image_size"] == 448
    started = hp["multitask"]["hyper_parameters"]["stage"]["init_from"]
    assert started.endswith("2_bridge/checkpoints/last.ckpt")
    # the bridge left the language model as `warmup` made it
    warm = torch.load(tmp_path / "1_warmup/checkpoints/last.ckpt", weights_only=True, map_location="cpu")
    key = "model.llm.lm_head.weight"
    assert torch.equal(hp["bridge"]["state_dict"][key], warm["state_dict"][key])


def test_a_misspelt_control_fails_before_any_stage_trains(tmp_path, run_app):
    r = run_app(pipeline.main, f"hydra.run.dir={tmp_path}", "eval.controls=[shuffled]")
    assert r.code != 0 and "control='shuffled' is not one of ('grey', 'swapped')" in r.err
    assert not (tmp_path / "1_objects").exists()


def test_a_misspelt_per_stage_entry_fails_before_any_stage_trains(tmp_path, run_app):
    typo = "+per_stage.multitsk=['stage.lr=1e-3']"
    r = run_app(pipeline.main, f"hydra.run.dir={tmp_path}", typo)
    assert r.code != 0 and "per_stage names ['multitsk'], which are no stage; the stages: [" in r.err
    assert not (tmp_path / "1_objects").exists()


def test_a_bad_stage_override_fails_before_any_stage_trains(tmp_path, run_app):
    # the override reaches `multitask` alone, fifth of six: it is still composed before the first
    typo = "per_stage.multitask=['stage.lr_scal.encoder=0.1']"
    r = run_app(pipeline.main, f"hydra.run.dir={tmp_path}", typo)
    assert r.code != 0 and "Could not override 'stage.lr_scal.encoder'" in r.err
    assert not (tmp_path / "1_objects").exists()


def test_wandb_offline_run_holds_the_logged_metrics(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "qwenvl.cli.train",
        f"hydra.run.dir={tmp_path}",
        "logger=wandb",
        "max_steps=6",
        "data.batch_size=2",
        "data.val.size=2",
        "callbacks.progress=null",
        "callbacks.throughput.window_size=3",  # rates from the 3rd batch; logged at step 5
    ]
    r = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "WANDB_SILENT": "true"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    losses = json.loads((tmp_path / "losses.json").read_text())["losses"]
    assert len(losses) == 6 and (tmp_path / "losses.png").is_file()  # every step's loss, drawn
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    assert b"train/loss" in records and b"val/loss" in records and b"train/device/items_per_sec" in records
    assert b"bench/synthetic_vqa/acc" in records  # validation through the benchmark code
    assert list(runs[0].glob("files/media/table/*.table.json"))  # the predictions table with pictures
    results = json.loads((tmp_path / "results.json").read_text())
    assert "synthetic_grounding@val" in results["benchmarks"] and "val" in results["benchmarks"]


RESUMABLE = [
    "logger=none",
    "callbacks.progress=null",
    "stages=[objects,warmup]",
    "steps.objects=3",
    "steps.warmup=12",
    "checkpoint_every=1",
    "data.batch_size=2",
    "data.val.size=2",
    "adapter.num_queries=16",
    "eval.benchmarks=[]",
    "eval.gap_tasks=[]",
]


def test_a_killed_pipeline_reuses_finished_stages_and_resumes_the_interrupted_one(
    tmp_path, launch, wait_for_step
):
    def _pipeline(out, *extra, wait=True):
        return launch("qwenvl.cli.pipeline", out, *RESUMABLE, *extra, wait=wait)

    import signal

    import torch

    straight = _pipeline(tmp_path / "straight", wait=False)  # alongside: the imports overlap
    out = tmp_path / "killed"
    proc = _pipeline(out, wait=False)
    wait_for_step(out / "2_warmup", 4, proc)
    proc.send_signal(signal.SIGKILL)  # a real kill: no handler runs, no cleanup
    proc.wait()
    ckpt = out / "2_warmup" / "checkpoints" / "last.ckpt"
    killed_at = torch.load(ckpt, weights_only=True)["global_step"]
    assert killed_at < 12
    assert json.loads((out / "2_warmup" / "stage.json").read_text())["status"] == "training"
    objects_ckpt = out / "1_objects" / "checkpoints" / "last.ckpt"
    objects_written = objects_ckpt.stat().st_mtime_ns

    r = _pipeline(out)
    assert r.returncode == 0, r.stderr[-3000:]
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-3000:]
    log = (out / "pipeline.log").read_text()
    assert "objects finished in an earlier run" in log and "resuming from its last checkpoint" in log
    assert objects_ckpt.stat().st_mtime_ns == objects_written  # stage 1 was not trained again
    a = torch.load(tmp_path / "straight" / "2_warmup" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert a["global_step"] == b["global_step"] == 12
    for k in a["state_dict"]:  # the same weights as the pipeline that was never stopped
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    # and the same summary: the resumed stage reports the losses of its whole run, not of its tail
    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())["stages"]["warmup"]
    resumed = json.loads((out / "summary.json").read_text())["stages"]["warmup"]
    assert resumed["train/loss_first"] == straight["train/loss_first"]
    assert resumed["train/loss_last"] == straight["train/loss_last"]
    losses = [json.loads((d / "2_warmup" / "losses.json").read_text()) for d in (tmp_path / "straight", out)]
    assert losses[0] == losses[1] and len(losses[1]["losses"]) == 12

    # asked again with other settings, the directory is refused, naming what differs
    r = _pipeline(out, "steps.warmup=13")
    assert r.returncode != 0
    assert "other settings" in r.stderr and "max_steps=13" in r.stderr


def test_debug_fdr_runs_each_stage_one_step_and_the_summary_says_so(tmp_path, run_app):
    args = [f"hydra.run.dir={tmp_path}", "debug=fdr", "stages=[pretrain,sft]", "logger=none"]
    args += ["callbacks.progress=null", "eval.benchmarks=[synthetic_vqa]", "eval.limit=2", "eval.controls=[]"]
    args += ["eval.gap_tasks=[]", "data.batch_size=2", "data.val.size=2", "eval.gallery=0"]
    r = run_app(pipeline.main, *args)
    assert r.code == 0, r.err[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [s["steps"] for s in summary["stages"].values()] == [1, 1]  # not the 300 asked for
    assert "| pretrain | 1 |" in (tmp_path / "summary.md").read_text()
