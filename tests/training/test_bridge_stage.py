"""The `bridge` stage: the encoder at 448 px learns to give the image tokens the 224-px model gave."""

from __future__ import annotations

import pytest
import torch

from qwenvl.cli.train import build, train
from qwenvl.evaluation.load import load_for_eval
from qwenvl.training.bridge import BridgeModule, relative_mse


@pytest.fixture(scope="module")
def model_224(tmp_path_factory, compose_train):
    """A checkpoint of a short `warmup` run at 224 px: the teacher, and where the student starts."""
    out = tmp_path_factory.mktemp("warmup")
    cfg = compose_train(out, "stage=warmup", "max_steps=2", "callbacks=default", "callbacks.progress=null")
    metrics = train(cfg)
    return metrics["checkpoint"]


def test_relative_mse_is_zero_for_the_teachers_tokens_and_one_for_zeros():
    teacher = torch.randn(2, 3, 4)
    assert relative_mse(teacher, teacher).item() == 0.0
    assert relative_mse(torch.zeros_like(teacher), teacher).item() == pytest.approx(1.0)


def test_encoder_and_adapter_learn_the_llm_and_the_teacher_do_not(tmp_path, compose_train, model_224):
    cfg = compose_train(tmp_path, "stage=bridge", f"stage.init_from={model_224}", batch_size=2, val_size=4)
    module, datamodule, _ = build(cfg)
    assert isinstance(module, BridgeModule)
    module.setup("fit")
    assert module.teacher.image_size == 224 and module.model.image_size == 448
    batch = next(iter(datamodule.train_dataloader()))
    assert set(batch) == {"pixel_values"} and batch["pixel_values"].shape == (2, 3, 448, 448)
    student, target = module(batch)
    assert student.shape == target.shape == (2, 16, module.model.config.llm.hidden_size)
    relative_mse(student, target).backward()
    opt = module.configure_optimizers()["optimizer"]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    for part, trained in {"encoder": True, "adapter": True, "llm": False}.items():
        params = list(getattr(module.model, part).parameters())
        assert all((p.grad is not None) == trained and (id(p) in in_opt) == trained for p in params), part
    assert all(p.grad is None and id(p) not in in_opt for p in module.teacher.parameters())
    assert not any(k.startswith("teacher") or "_teacher" in k for k in module.state_dict())
    # the teacher is the checkpoint itself, read at its own resolution
    ref, _ = load_for_eval(model_224)
    assert torch.equal(module.teacher.encoder.positional_embedding, ref.encoder.positional_embedding)


def test_a_short_bridge_brings_the_448_px_tokens_towards_the_224_px_ones(tmp_path, compose_train, model_224):
    cfg = compose_train(
        tmp_path,
        "stage=bridge",
        f"stage.init_from={model_224}",
        "max_steps=30",
        "callbacks=default",
        "callbacks.progress=null",
        batch_size=4,
        val_size=8,
    )
    metrics = train(cfg)
    # first/last are 10-step means of the relative error; the student starts at the teacher's weights
    assert 0 < metrics["train/loss_last"] < 0.8 * metrics["train/loss_first"]
    model, processor = load_for_eval(metrics["checkpoint"])  # the student alone, at 448 px
    assert model.image_size == 448 and processor.image_size == 448
    teacher, _ = load_for_eval(model_224)
    assert torch.equal(model.llm.lm_head.weight, teacher.llm.lm_head.weight)  # the LLM untouched


def test_the_bridge_needs_a_checkpoint_of_another_resolution(tmp_path, compose_train, model_224):
    module, _, _ = build(compose_train(tmp_path, "stage=bridge"))
    with pytest.raises(ValueError, match="needs stage.init_from"):
        module.setup("fit")
    same = compose_train(tmp_path, "stage=bridge", "stage.image_size=224", f"stage.init_from={model_224}")
    module, _, _ = build(same)
    with pytest.raises(ValueError, match="trained at 224 px, the stage's own image_size"):
        module.setup("fit")
    fixed = compose_train(tmp_path, "stage=bridge", "encoder.pos_grid=8", f"stage.init_from={model_224}")
    module, _, _ = build(fixed)
    with pytest.raises(ValueError, match="encoder.pos_grid=8 fixes whatever the resolution"):
        module.setup("fit")


def test_the_bridge_needs_the_synthetic_worlds_pictures(tmp_path, compose_train):
    other = compose_train(tmp_path, "stage=bridge", "data.train._target_=qwenvl.data.formats.Something")
    with pytest.raises(ValueError, match="learns image tokens on the synthetic world's pictures"):
        build(other)
