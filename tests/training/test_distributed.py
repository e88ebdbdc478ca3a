"""DDP and FSDP2 with 2 CPU processes over gloo, launched the way a user launches them."""

import json

import pytest
import torch
from lightning.fabric.utilities.load import _load_distributed_checkpoint  # what consolidate_checkpoint runs
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
def test_fsdp2_two_processes_saves_and_resumes_sharded_checkpoints_and_rank0_init_trains_the_same(
    tmp_path, train_cli
):
    """Two FSDP steps of stage 2, every rank building the model, from a local LLM checkpoint with
    tied embeddings; the run resumed to step 4 and once finished; then the same two steps with
    `parallel.rank0_init` (one test, so that the two-step run is made once)."""
    from qwenvl.models import LLMConfig
    from qwenvl.models.llm import build_llm

    build_llm(LLMConfig(tie_word_embeddings=True), 4096).save_pretrained(tmp_path / "llm")
    run = [*COMMON, f"llm.pretrained={tmp_path / 'llm'}", "stage=multitask", "trainer=fsdp"]
    out = tmp_path / "every"
    r = train_cli(out, *run, "max_steps=2", "checkpoint_every=2")
    assert "FSDP2: 6 units sharded over 2 ranks (rank 0)" in r.stdout  # 3 encoder blocks, 2 LLM layers, root
    assert "(rank 1)" in r.stdout
    two_steps = load_file(out / "checkpoints" / "last.model" / "model.safetensors")
    two_steps_loss = json.loads((out / "results.json").read_text())["benchmarks"]["val"]["metrics"]["loss"]
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_dir() and len(list(last.glob("*.distcp"))) == 2  # one shard per rank
    train_cli(out, *run, "max_steps=4", "checkpoint_every=2", "ckpt_path=last")
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
    # The LLM's embeddings are tied to its output layer: the export writes the matrix once.
    tied = "llm.model.embed_tokens.weight"
    assert stage2.keys() == {k.removeprefix("model.") for k in shards} - {tied}
    assert all(torch.equal(v, shards[f"model.{k}"]) for k, v in stage2.items())  # step 4's weights
    assert torch.equal(shards[f"model.{tied}"], stage2["llm.lm_head.weight"])
    # What `python -m lightning.fabric.utilities.consolidate_checkpoint last.ckpt` writes evaluates too.
    torch.save(_load_distributed_checkpoint(last), tmp_path / "last.ckpt.consolidated")
    consolidated = load_for_eval(tmp_path / "last.ckpt.consolidated")[0].state_dict()
    assert all(torch.equal(v, consolidated[k]) for k, v in model.state_dict().items())
    # (A stage started from it under FSDP: tests/cli/test_pipeline_distributed.py.)
    # Resumed once finished: nothing to train; its weights validated again (the model is sharded
    # once, though Lightning configures it for the validation as well), the same losses kept.
    val = results["benchmarks"]["val"]["metrics"]
    train_cli(out, *run, "max_steps=4", "ckpt_path=last")
    assert json.loads((out / "results.json").read_text())["benchmarks"]["val"]["metrics"] == val != {}

    # `parallel.rank0_init`: rank 0 builds the model; the other ranks build it on the meta device
    # (the tied LLM from its config.json alone) and receive rank 0's weights and buffers once it is
    # sharded. The run must be the one where every rank builds the model from the seed: the same
    # weights after two steps and the same validation loss (a rank holding garbage, in a weight or
    # a buffer such as the rotary table, would change both).
    r = train_cli(tmp_path / "rank0", *run, "max_steps=2", "parallel.rank0_init=true")
    assert "built on the meta device: its shards now take rank 0's weights" in r.stdout
    a = load_file(tmp_path / "rank0" / "checkpoints" / "last.model" / "model.safetensors")
    b = two_steps
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    results = json.loads((tmp_path / "rank0" / "results.json").read_text())
    assert results["benchmarks"]["val"]["metrics"]["loss"] == two_steps_loss
