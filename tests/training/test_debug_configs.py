"""`debug=...`: the lightning-hydra-template style switches, each run for real."""

import json

import torch

from qwenvl.cli.train import main

QUICK = [
    "logger=none",
    "callbacks.progress=null",
    "data.val.size=2",
    "adapter.num_queries=16",
    "stage.image_size=224",
]


def test_overfit_drives_the_loss_of_one_repeated_batch_down(tmp_path, run_app):
    r = run_app(main, f"hydra.run.dir={tmp_path}", *QUICK, "debug=overfit", "max_steps=40", "stage=multitask")
    assert r.code == 0, r.err[-2000:]
    losses = json.loads((tmp_path / "losses.json").read_text())["losses"]
    assert len(losses) == 40 and losses[-1] < 0.5 * losses[0]


def test_profiler_writes_its_report_into_the_run_directory(tmp_path, run_app):
    r = run_app(main, f"hydra.run.dir={tmp_path}", *QUICK, "debug=profiler", "max_steps=2")
    assert r.code == 0, r.err[-2000:]
    assert "run_training_batch" in (tmp_path / "fit-profile.txt").read_text()


def test_fdr_runs_one_batch(tmp_path, run_app):
    r = run_app(main, f"hydra.run.dir={tmp_path}", *QUICK, "debug=fdr", "max_steps=2")
    assert r.code == 0, r.err[-2000:]
    assert len(json.loads((tmp_path / "losses.json").read_text())["losses"]) == 1  # one batch


def test_anomaly_stops_at_the_first_nan_gradient(tmp_path, run_app, monkeypatch):
    """A NaN made in the adapter's forward is stopped by `debug=anomaly` at the first backward
    function that returns one, with autograd's report (a plain run trains on with NaN losses)."""
    from qwenvl.models.adapter import Resampler

    forward = Resampler.forward

    def nan_forward(self, *args, **kwargs):
        return forward(self, *args, **kwargs) * torch.tensor(-1.0).sqrt()  # NaN, forward and backward

    monkeypatch.setattr(Resampler, "forward", nan_forward)
    r = run_app(main, f"hydra.run.dir={tmp_path}", *QUICK, "debug=anomaly", "max_steps=2")
    assert r.code != 0
    assert "returned nan values" in r.out + r.err
