"""The full-model export of a sharded run, in one process: what it writes, and a run that died
halfway through an earlier export. (Two FSDP processes: tests/training/test_distributed.py.)"""

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from qwenvl import QwenVLModel, QwenVLProcessor
from qwenvl.models import ResamplerConfig
from qwenvl.training.export import export_full_model


@pytest.fixture
def one_process_group(tmp_path):
    """The gather is a collective: a process group of one (gloo, rendezvous through a file)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_the_export_replaces_an_old_one_and_what_a_dead_export_left(tmp_path, one_process_group):
    torch.manual_seed(0)
    model = QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16))
    module = SimpleNamespace(model=model, processor=QwenVLProcessor.from_model(model))
    trainer = SimpleNamespace(is_global_zero=True, strategy=SimpleNamespace(barrier=lambda name=None: None))
    checkpoints = tmp_path / "checkpoints"
    target = checkpoints / "last.model"
    (checkpoints / "last.model.old").mkdir(parents=True)  # a run killed between the two renames
    (checkpoints / "last.model.old" / "model.safetensors").write_text("stale")
    target.mkdir()
    (target / "model.safetensors").write_text("the previous export")

    assert export_full_model(module, trainer, target) == target
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.model"]  # no .tmp, no .old
    saved = load_file(target / "model.safetensors")
    own = model.state_dict()
    assert saved.keys() == own.keys() and all(torch.equal(saved[k], own[k]) for k in own)
    again = QwenVLModel.from_pretrained(target)  # config.json written with it: the same shapes
    assert again.image_tokens == model.image_tokens
    assert QwenVLProcessor.from_pretrained(target).image_size == module.processor.image_size
