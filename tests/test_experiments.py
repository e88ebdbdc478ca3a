"""Experiments compose; full-scale recipes instantiate on the meta device; sweeps end in leaderboards."""

import json
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from qwenvl.paths import CONF_DIR, ROOT
from qwenvl.training.module import QwenVLLitModule

EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))


def _base(name: str) -> str:
    """The entry point an experiment is written for."""
    return "bench" if name.startswith("bench") else "pipeline" if name.startswith("pipeline") else "train"


def _compose(config: str, overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config, overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name):
    extra = ["data_root=/data", "paths.output_dir=/tmp/x"] if _base(name) == "train" else []
    cfg = _compose(_base(name), [f"experiment={name}", *extra])
    assert cfg.encoder.width > 0
    if _base(name) == "train":
        OmegaConf.to_container(cfg.trainer, resolve=True)  # e.g. accumulation from the global batch
        OmegaConf.to_container(cfg.stage, resolve=True)


def _pipeline_plan(overrides):
    cfg = _compose("pipeline", overrides)
    return {k: OmegaConf.to_container(cfg[k]) for k in ("stages", "steps", "per_stage")} | {
        "adapter": cfg.adapter.num_queries,
        "batch_size": cfg.data.batch_size,
    }


def test_pipeline_tiny_is_the_default_and_pipeline_long_triples_its_steps():
    default = _pipeline_plan([])
    assert _pipeline_plan(["experiment=pipeline_tiny"]) == default
    long = _pipeline_plan(["experiment=pipeline_long"])
    # the long run's documented figures are the default's recipe at three times the steps
    assert long["steps"] == {stage: 3 * n for stage, n in default["steps"].items()}
    long.pop("steps"), default.pop("steps")
    assert long == default


FULL = {
    "qwen_vl_stage1": {"encoder": True, "adapter": True, "llm": False},
    "qwen_vl_stage2": {"encoder": True, "adapter": True, "llm": True},
    "qwen_vl_stage3": {"encoder": False, "adapter": True, "llm": True},
}


@pytest.mark.parametrize("name", list(FULL))
def test_full_scale_recipes_build_on_meta(name):
    cfg = _compose(
        "train", [f"experiment={name}", "data_root=/data", "paths.output_dir=/tmp/x", "logger=none"]
    )
    c = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k, v in cfg.items()
        if k != "hydra"
    }
    with torch.device("meta"):
        module = QwenVLLitModule(c["encoder"], c["adapter"], c["llm"], c["stage"], max_steps=c["max_steps"])
    assert 9.5e9 < module.model.num_parameters() < 9.7e9
    for part, trained in FULL[name].items():
        assert (module.trainable_counts[part] > 0) == trained, part
    t = c["trainer"]
    per_step = c["data"]["batch_size"] * t["devices"] * t["num_nodes"] * t["accumulate_grad_batches"]
    assert per_step == c["global_batch"]
    assert c["parallel"]["param_dtype"] == "bf16" and c["parallel"]["activation_checkpointing"]


def test_ablations_define_their_sweeps():
    for name in [n for n in EXPERIMENTS if n.startswith("ablation_")]:
        cfg = _compose("train", [f"experiment={name}"])
        params = cfg.hydra.sweeper.params
        assert "seed" in params and len(params) == 2, name


def _multirun(tmp_path, *args):
    cmd = [sys.executable, "-m", "qwenvl.cli.train", "-m", f"hydra.sweep.dir={tmp_path}", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_job_multirun_writes_two_results_and_a_leaderboard(tmp_path):
    _multirun(tmp_path, "experiment=smoke", "seed=1,2")
    results = sorted(tmp_path.glob("*/results.json"))
    assert len(results) == 2
    assert {json.loads(p.read_text())["overrides"][-1] for p in results} == {"seed=1", "seed=2"}
    rows = [line for line in (tmp_path / "leaderboard.md").read_text().splitlines() if line.startswith("| `")]
    assert len(rows) == 2 and (tmp_path / "leaderboard.png").stat().st_size > 1000
    assert {p.name for p in tmp_path.glob("leaderboard.*")} >= {"leaderboard.csv", "leaderboard.html"}


def test_optuna_search_with_two_trials(tmp_path):
    _multirun(
        tmp_path, "hparams_search=optuna", "experiment=smoke", "hydra.sweeper.n_trials=2", "evaluate.limit=4"
    )
    assert len(list(tmp_path.glob("*/results.json"))) == 2
    assert "best_params" in (tmp_path / "optimization_results.yaml").read_text()


def test_submitit_local_launcher_runs_one_job(tmp_path):
    _multirun(tmp_path, "experiment=smoke", "hydra/launcher=local")
    assert (tmp_path / "0" / "results.json").is_file()
