"""DDP and FSDP2 with 2 CPU processes over gloo, launched the way a user launches them."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

from qwenvl.evaluation.load import load_for_eval

COMMON = [
    "logger=none",
    "data.batch_size=2",
    "data.train.size=40",
    "data.val.size=4",
    "adapter.num_queries=16",
    "stage.image_size=224",
    "callbacks.progress=null",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["multitask", "objects"])
def test_ddp_two_processes(tmp_path, train_cli, stage):
    train_cli(tmp_path / "ddp", *COMMON, f"stage={stage}", "trainer=ddp", "max_steps=3")
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 3


@pytest.mark.slow
def test_fsdp2_two_processes_saves_and_resumes_sharded_checkpoints(tmp_path, train_cli):
    out = tmp_path / "fsdp"
    r = train_cli(out, *COMMON, "stage=multitask", "trainer=fsdp", "max_steps=2", "checkpoint_every=2")
    assert "FSDP2: 6 units sharded over 2 ranks (rank 0)" in r.stdout  # 3 encoder blocks, 2 LLM layers, root
    assert "(rank 1)" in r.stdout
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_dir() and len(list(last.glob("*.distcp"))) == 2  # one shard per rank
    r = train_cli(
        out, *COMMON, "stage=multitask", "trainer=fsdp", "max_steps=4", "checkpoint_every=2", "ckpt_path=last"
    )
    meta = torch.load(last / "meta.pt", weights_only=True, map_location="cpu")
    assert meta["global_step"] == 4
    # The full model, written beside the shards, is what the next stage starts from and what the
    # evaluation reads (neither unpickles the shards' index).
    exported = out / "checkpoints" / "last.model"
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["ckpt"] == str(exported)
    model, _ = load_for_eval(exported)  # strict: every weight there, none extra
    stage2 = load_file(exported / "model.safetensors")
    dcp_to_torch_save(last, tmp_path / "consolidated.pt")  # the shards, read here as a reference
    shards = torch.load(tmp_path / "consolidated.pt", weights_only=True)["state_dict"]
    assert stage2.keys() == {k.removeprefix("model.") for k in shards}
    assert all(torch.equal(v, shards[f"model.{k}"]) for k, v in stage2.items())  # step 4's weights
    # (A stage started from it under FSDP: tests/cli/test_pipeline_distributed.py.)
    # Resumed once finished: nothing to train; its weights validated again (the model is sharded
    # once, though Lightning configures it for the validation as well), the same losses kept.
    val = results["benchmarks"]["val"]["metrics"]
    train_cli(out, *COMMON, "stage=multitask", "trainer=fsdp", "max_steps=4", "ckpt_path=last")
    assert json.loads((out / "results.json").read_text())["benchmarks"]["val"]["metrics"] == val != {}


@pytest.mark.slow
def test_fsdp2_with_rank0_init_starts_from_the_weights_one_process_builds(tmp_path, train_cli):
    """`parallel.rank0_init`: rank 0 builds the model; the other ranks build it on the meta device
    and receive rank 0's weights and buffers once it is sharded. At a learning rate of 0 the run's
    export is the model a single process builds from the same seed, and its validation loss that
    process's (a rank holding garbage, a weight or a buffer such as the rotary table, would move it)."""
    tied = ["llm.tie_word_embeddings=true", "stage=multitask", "stage.lr=0.0", "max_steps=1"]
    r = train_cli(tmp_path / "fsdp", *COMMON, *tied, "trainer=fsdp", "parallel.rank0_init=true")
    assert "built on the meta device: its shards now take rank 0's weights" in r.stdout
    single = [o for o in COMMON if o != "trainer.devices=2"]
    train_cli(tmp_path / "one", *single, *tied, "trainer.devices=1")
    exported = load_file(tmp_path / "fsdp" / "checkpoints" / "last.model" / "model.safetensors")
    ckpt = torch.load(tmp_path / "one" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    one = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    assert exported.keys() <= one.keys() and all(torch.equal(exported[k], one[k]) for k in exported)
    losses = [json.loads((tmp_path / r / "results.json").read_text())["benchmarks"]["val"]["metrics"]["loss"]
              for r in ("fsdp", "one")]  # fmt: skip
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)
