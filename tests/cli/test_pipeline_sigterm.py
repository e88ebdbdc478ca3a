"""A pipeline pre-empted by SIGTERM stops with exit code 143, and the same command resumes it."""

import json
import signal

import torch

from qwenvl.cli.train import PREEMPTED_EXIT

PIPELINE = [
    "logger=none",
    "callbacks.progress=null",
    "stages=[warmup]",
    "steps.warmup=12",
    "checkpoint_every=1",  # a checkpoint each step tells the test that training is under way
    "data.batch_size=2",
    "data.val.size=2",
    "adapter.num_queries=16",
    "eval.benchmarks=[]",
    "eval.gap_tasks=[]",
]


def test_a_pipeline_stopped_by_sigterm_exits_143_and_resumes(tmp_path, launch, wait_for_step):
    out = tmp_path / "run"
    proc = launch("qwenvl.cli.pipeline", out, *PIPELINE, wait=False)
    wait_for_step(out / "1_warmup", 3, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT, proc.stderr.read()[-3000:]
    assert json.loads((out / "1_warmup" / "stage.json").read_text())["status"] == "training"
    assert not (out / "summary.json").exists()  # stopped: nothing after the stage ran
    ckpt = out / "1_warmup" / "checkpoints" / "last.ckpt"
    assert 3 <= torch.load(ckpt, weights_only=True)["global_step"] < 12

    r = launch("qwenvl.cli.pipeline", out, *PIPELINE)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming from its last checkpoint" in (out / "pipeline.log").read_text()
    assert json.loads((out / "1_warmup" / "stage.json").read_text())["status"] == "done"
    assert [p.name for p in ckpt.parent.iterdir()] == ["last.ckpt"]
    assert torch.load(ckpt, weights_only=True)["global_step"] == 12
