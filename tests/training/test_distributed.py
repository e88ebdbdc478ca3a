"""DDP and FSDP2 with 2 CPU processes over gloo, launched the way a user launches them."""

import pytest
import torch

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
