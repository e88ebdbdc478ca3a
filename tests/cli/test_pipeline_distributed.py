"""qwenvl-pipeline on two processes: FSDP2 over gloo, started by torchrun, each stage starting
from the full model the stage before exported, the evaluation shared out."""

import json
import subprocess
import sys
import time

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file

from qwenvl.cli import launch, pipeline
from qwenvl.paths import CONF_DIR


@pytest.fixture
def hydra_conf():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda name, overrides=(): compose(config_name=name, overrides=list(overrides))


TINY = [
    "logger=none",
    "callbacks.progress=null",
    "trainer=fsdp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "stages=[pretrain,sft]",
    "steps.pretrain=2",
    "steps.sft=2",
    "data.batch_size=2",
    "data.train.size=40",
    "data.val.size=4",
    "eval.limit=4",
    "eval.resamples=20",
    "eval.gallery=0",
    "eval.gap_samples=4",
    "eval.benchmarks=[synthetic_vqa]",
    "eval.controls=[swapped]",
]


@pytest.mark.slow
def test_torchrun_chains_fsdp_stages_through_the_exported_model_and_evaluates_once(tmp_path):
    # `objects` refuses FSDP (its head is no part of the sharded model): DDP for that stage alone
    objects = ["stages=[objects,pretrain,sft]", "steps.objects=2", "+per_stage.objects=['trainer=ddp']"]
    _torchrun_pipeline(tmp_path, *objects)
    summary = json.loads((tmp_path / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["objects", "pretrain", "sft"]
    assert stages["objects"]["checkpoint"] == str(tmp_path / "1_objects" / "checkpoints" / "last.ckpt")
    for i, name in enumerate(("pretrain", "sft"), start=2):
        assert stages[name]["checkpoint"] == str(tmp_path / f"{i}_{name}" / "checkpoints" / "last.model")
        assert stages[name]["steps"] == 2 and "gap/vqa" in stages[name]  # rank 0 measured the image gap
    pretrain = load_file(tmp_path / "2_pretrain" / "checkpoints" / "last.model" / "model.safetensors")
    sft = load_file(tmp_path / "3_sft" / "checkpoints" / "last.model" / "model.safetensors")
    # sft freezes the encoder: pretrain's weights exactly, its position table re-gridded 224 -> 448 px
    table = "encoder.positional_embedding"
    assert pretrain[table].shape[0] * 4 == sft[table].shape[0]
    encoder = [k for k in pretrain if k.startswith("encoder.") and k != table]
    assert encoder and all(torch.equal(pretrain[k], sft[k]) for k in encoder)
    assert not torch.equal(pretrain["adapter.query"], sft["adapter.query"])
    # Each rank generated half the samples; rank 0 merged them, each id once, and scored them.
    for folder in ("eval", "eval_swapped"):
        predictions = tmp_path / folder / "predictions"
        ids = [json.loads(line)["id"] for line in (predictions / "synthetic_vqa.jsonl").open()]
        assert len(ids) == len(set(ids)) == 4 and not list(predictions.glob("*.rank*.jsonl"))
    assert summary["evaluation"]["with_images"]["synthetic_vqa"]["samples"] == 4
    # Hydra's outputs: rank 0's .hydra/ and log, rank 1's log beside it
    assert (tmp_path / ".hydra" / "config.yaml").is_file() and (tmp_path / "pipeline_rank1.log").is_file()


@pytest.mark.parametrize("env, subdir, suffix", [({}, ".hydra", ""), ({"RANK": "1"}, None, "_rank1")])
def test_only_rank_0_writes_hydras_files_and_the_others_log_apart(monkeypatch, env, subdir, suffix):
    for key in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import qwenvl.paths  # noqa: F401  (registers the resolvers)

    node = OmegaConf.create({"subdir": "${qwenvl_rank0:.hydra}", "log": "train${qwenvl_rank_suffix:}.log"})
    assert node.subdir == subdir and node.log == f"train{suffix}.log"


def _torchrun_pipeline(out, *overrides, wait=True):
    # --standalone: a free port for the rendezvous (tests run side by side under pytest-xdist)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*torchrun, "-m", "qwenvl.cli.pipeline", f"hydra.run.dir={out}", *TINY, *overrides]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_a_killed_fsdp_pipeline_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    # long enough to be killed mid-stage; the weights alone are compared: no evaluation
    longer = ["steps.pretrain=20", "checkpoint_every=5", "data.train.size=200", "eval.benchmarks=[]"]
    longer += ["eval.gap_tasks=[]"]
    _torchrun_pipeline(tmp_path / "straight", *longer)
    killed = tmp_path / "killed"
    proc = _torchrun_pipeline(killed, *longer, wait=False)
    meta = killed / "1_pretrain" / "checkpoints" / "last.ckpt" / "meta.pt"
    deadline = time.monotonic() + 300
    while not meta.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    # A real kill of every process: torchrun's workers run in sessions of their own, so killing
    # the launcher alone would leave them training; each command line names the run directory.
    subprocess.run(["pkill", "-9", "-f", f"hydra.run.dir={killed}"], check=False)
    proc.wait(timeout=60)
    step = torch.load(meta, weights_only=True)["global_step"]
    assert 0 < step < 20  # killed mid-stage
    assert json.loads((killed / "1_pretrain" / "stage.json").read_text())["status"] == "training"
    r = _torchrun_pipeline(killed, *longer)
    out = r.stdout + r.stderr
    assert "pretrain for 20 steps (resuming from its last checkpoint)" in out
    assert f"Restored all states from the checkpoint at {meta.parent}" in out  # not trained afresh
    for stage in ("1_pretrain", "2_sft"):
        a = load_file(tmp_path / "straight" / stage / "checkpoints" / "last.model" / "model.safetensors")
        b = load_file(killed / stage / "checkpoints" / "last.model" / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), stage


def test_a_multi_process_pipeline_without_a_launcher_is_refused_before_training(tmp_path, run_app):
    r = run_app(pipeline.main, f"hydra.run.dir={tmp_path}", *TINY)
    assert r.code != 0 and "torchrun --nproc_per_node=2 -m qwenvl.cli.pipeline" in r.err
    assert not (tmp_path / "1_pretrain").exists()


def test_launched_processes_must_be_given_one_run_directory(monkeypatch):
    trainer = {"devices": 2, "num_nodes": 1}
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(ValueError, match="hydra.run.dir=DIR"):
        launch.check_launch(trainer, ["hydra.verbose=false"])
    launch.check_launch(trainer, ["hydra.run.dir=/tmp/x"])  # given: accepted
    launch.check_launch({"devices": 1}, [])  # one process needs neither
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_NTASKS", "2")  # srun's tasks, for qwenvl-train as well
    with pytest.raises(ValueError, match="hydra.run.dir=DIR"):
        launch.check_run_dir(trainer, [])
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a batch script's one task: Lightning launches the rest
    launch.check_run_dir(trainer, [])


def test_a_multiruns_tasks_share_the_directory_the_sweep_gave_them(monkeypatch):
    """submitit's SLURM tasks each run the job with the output directory the launching process
    chose: no run directory needs giving."""
    from types import SimpleNamespace

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    def run_as(mode, launcher="hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"):
        hydra = SimpleNamespace(mode=mode, launcher={"_target_": launcher})
        monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: hydra))

    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    run_as(RunMode.MULTIRUN)
    launch.check_run_dir({"devices": 2}, [])
    run_as(RunMode.RUN)
    with pytest.raises(ValueError, match="hydra.run.dir=DIR"):
        launch.check_run_dir({"devices": 2}, [])
    # A sweep under torchrun with Hydra's own launcher: each process runs the whole sweep and
    # would stamp its own sweep directory.
    run_as(RunMode.MULTIRUN, "hydra._internal.core_plugins.basic_launcher.BasicLauncher")
    with pytest.raises(ValueError, match="hydra.sweep.dir=DIR"):
        launch.check_run_dir({"devices": 2}, [])
    launch.check_run_dir({"devices": 2}, ["hydra.sweep.dir=/tmp/sweep"])


@pytest.mark.parametrize(
    "devices, nodes, n",
    [(2, 1, 2), ("2", 2, 4), ([0, 3], 1, 2), ("0,1,2", 1, 3), ("3,", 1, 1), ("auto", 1, 1)],
)
def test_processes_counts_lightnings_device_forms(devices, nodes, n):
    # "auto" on a CPU accelerator is one process
    assert launch.processes({"devices": devices, "num_nodes": nodes, "accelerator": "cpu"}) == n


def test_fsdp_shards_over_every_process_of_every_node(hydra_conf):
    """ModelParallelStrategy's mesh must span the world: data-parallel size = devices x nodes."""
    for overrides, n in [(["trainer.devices=4", "trainer.num_nodes=2"], 8), (["trainer.accelerator=cpu"], 1)]:
        cfg = hydra_conf("train", ["trainer=fsdp", *overrides])
        assert OmegaConf.to_container(cfg.trainer.strategy, resolve=True)["data_parallel_size"] == n


def test_a_stage_on_other_processes_than_the_run_is_refused_before_training(hydra_conf):
    from qwenvl.cli import pipeline

    user = [
        "trainer=fsdp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "+per_stage.objects=['trainer.devices=1']",
    ]
    cfg = hydra_conf("pipeline", [*user, "out_dir=/nonexistent"])
    with pytest.raises(
        ValueError, match=r"stage 1 \(objects\): its trainer asks for 1 processes, the run's for 2"
    ):
        pipeline.check_stages(cfg, user)
