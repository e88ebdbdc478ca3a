"""stage.init_from's errors name the file, the reason and what to pass; a sharded FSDP checkpoint is
refused with the command that makes it one file, which then loads."""

import json
import subprocess
import sys

import pytest
import torch
import torch.distributed.checkpoint as dcp

from qwenvl import QwenVLModel
from qwenvl.models import ResamplerConfig
from qwenvl.training.init_from import load_into, read_weights


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16))


def _lightning_ckpt(model, path):
    """A file laid out as Lightning writes one: the module's weights under `model.`."""
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return path


def test_a_text_file_is_no_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is no checkpoint\n")  # torch.load alone: a bare `KeyError: 101`
    with pytest.raises(ValueError, match="not a checkpoint torch can read") as e:
        read_weights(path)
    assert f"stage.init_from={path}" in str(e.value) and "checkpoints/last.ckpt" in str(e.value)


def test_a_tensor_file_holds_no_model_weights(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "t.pt")
    with pytest.raises(ValueError, match="holds no model weights.*checkpoints/last.ckpt"):
        read_weights(tmp_path / "t.pt")


def test_a_checkpoint_of_another_model_names_the_file_the_tensor_and_the_fix(tmp_path, tiny):
    other = QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=64))
    path = _lightning_ckpt(other, tmp_path / "q64.ckpt")
    with pytest.raises(ValueError, match="another shape") as e:
        load_into(tiny, path)
    msg = str(e.value)
    assert f"stage.init_from={path}" in msg
    assert "adapter.query (64, 128) (this model: (16, 128))" in msg and "adapter and llm settings" in msg


def test_a_directory_without_weights_says_what_it_holds(tmp_path):
    with pytest.raises(FileNotFoundError, match="without model.safetensors.*checkpoints/last.ckpt"):
        read_weights(tmp_path)
    (tmp_path / "last.ckpt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="it holds last.ckpt: pass one of them"):
        read_weights(tmp_path)


def test_a_released_qwen_vl_directory_is_refused_with_the_command_that_converts_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen", "visual": {"width": 8}}))
    with pytest.raises(ValueError, match="a released Qwen-VL directory") as e:
        read_weights(tmp_path)
    assert f"qwenvl-convert {tmp_path} OUT_DIR" in str(e.value)


def test_a_sharded_fsdp_checkpoint_is_refused_with_the_command_that_consolidates_it(tmp_path, tiny):
    # A directory laid out as trainer=fsdp writes last.ckpt: DCP shards of {"state_dict": ...}, meta.pt
    last = tmp_path / "last.ckpt"
    state = {f"model.{k}": v.clone() for k, v in tiny.state_dict().items()}
    dcp.save({"state_dict": state}, checkpoint_id=last)
    torch.save({"global_step": 2, "epoch": 0}, last / "meta.pt")
    assert list(last.glob("*.distcp"))
    with pytest.raises(ValueError, match="sharded FSDP checkpoint") as e:
        read_weights(last)
    assert "lightning.fabric.utilities.consolidate_checkpoint" in str(e.value)
    # the advice works: the consolidated file loads, with weights_only=True, to the same weights
    cmd = [sys.executable, "-m", "lightning.fabric.utilities.consolidate_checkpoint", str(last)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    weights = read_weights(f"{last}.consolidated")
    own = tiny.state_dict()
    assert weights.keys() == own.keys() and all(torch.equal(weights[k], own[k]) for k in own)
