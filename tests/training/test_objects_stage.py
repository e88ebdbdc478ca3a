"""The `objects` stage: the encoder alone learns object maps; the next stage starts from its encoder."""

from __future__ import annotations

import pytest
import torch

from qwenvl.cli.train import build, train
from qwenvl.evaluation.load import load_for_eval
from qwenvl.training.module import QwenVLLitModule
from qwenvl.training.object_maps import ObjectMapHead, ObjectMapModule


def test_only_the_encoder_and_the_head_get_grads_and_optimizer_state(tmp_path, compose_train):
    module, datamodule, _ = build(compose_train(tmp_path, "stage=objects", batch_size=4, val_size=8))
    assert isinstance(module, ObjectMapModule)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["pixel_values"].shape == (4, 3, 224, 224) and batch["kind"].shape == (4, 64, 16)
    module.object_loss(module(batch), batch).backward()
    opt = module.configure_optimizers()["optimizer"]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    for part, trained in {"encoder": True, "adapter": False, "llm": False}.items():
        params = list(getattr(module.model, part).parameters())
        assert all((p.grad is not None) == trained and (id(p) in in_opt) == trained for p in params), part
    head = list(module.object_head.parameters())
    assert all(p.grad is not None and id(p) in in_opt for p in head)


def test_cells_without_a_character_weigh_as_background(tmp_path, compose_train):
    module, _, _ = build(compose_train(tmp_path, "stage=objects", batch_size=4, val_size=8))
    # One patch of four cells, one of them a letter; every map but `char` predicted right.
    batch = {m: torch.zeros(1, 1, 4, dtype=torch.long) for m in ("kind", "colour", "centre")}
    batch["char"] = torch.tensor([[[0, 0, 0, 5]]])
    sizes = {"kind": 7, "colour": 7, "char": 33, "centre": 31}
    logits = {m: torch.zeros(1, 1, 4, n) for m, n in sizes.items()}
    for m in logits:
        logits[m][..., 0] = 30.0  # "background" / "no character" everywhere
    loss = module.object_loss(logits, batch)
    # The letter cell costs ~30 nats, the three others ~0; they weigh background_weight (0.1) each.
    w = module.background_weight
    assert loss.item() == pytest.approx(30 / (1 + 3 * w), rel=1e-3)


def test_head_splits_logits_per_map_and_cell():
    head = ObjectMapHead(width=32, cells=2)
    out = head(torch.randn(3, 5, 32))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "kind": (3, 5, 4, 7),
        "colour": (3, 5, 4, 7),
        "char": (3, 5, 4, 33),
        "centre": (3, 5, 4, 31),
    }


def test_objects_stage_learns_and_the_next_stage_starts_from_its_encoder(tmp_path, compose_train):
    metrics = train(
        compose_train(
            tmp_path / "objects",
            "stage=objects",
            "max_steps=40",
            "callbacks=default",
            "callbacks.progress=null",
            batch_size=4,
            val_size=8,
        )
    )
    # from random weights the loss falls within 40 steps (first/last are 10-step means)
    assert metrics["train/loss_last"] < 0.6 * metrics["train/loss_first"]
    assert 0 <= metrics["val/acc_shape"] <= 1 and metrics["val/acc_background"] > 0.5
    ckpt = torch.load(metrics["checkpoint"], weights_only=True, map_location="cpu")
    assert any(k.startswith("object_head.") for k in ckpt["state_dict"])
    model, _ = load_for_eval(metrics["checkpoint"])  # evaluation tools read it too (its head dropped)
    assert torch.equal(model.encoder.conv1.weight, ckpt["state_dict"]["model.encoder.conv1.weight"])
    # a head of another shape (an older set of maps) does not stop the encoder being read
    older = tmp_path / "older.ckpt"
    ckpt["state_dict"]["object_head.proj.weight"] = ckpt["state_dict"]["object_head.proj.weight"][:-31]
    torch.save(ckpt, older)
    assert torch.equal(load_for_eval(older)[0].encoder.conv1.weight, model.encoder.conv1.weight)
    cfg = compose_train(
        tmp_path / "warmup",
        "stage=warmup",
        f"stage.init_from={metrics['checkpoint']}",
        batch_size=4,
        val_size=8,
    )
    module = QwenVLLitModule(**{k: cfg[k] for k in ("encoder", "adapter", "llm", "stage")})  # head ignored
    trained = ckpt["state_dict"]["model.encoder.conv1.weight"]
    assert torch.equal(module.model.encoder.conv1.weight, trained)
    assert not any(p.requires_grad for p in module.model.encoder.parameters())  # warmup keeps it


def test_objects_stage_needs_the_synthetic_world(tmp_path, compose_train):
    with pytest.raises(ValueError, match="data=synthetic"):
        build(
            compose_train(
                tmp_path,
                "stage=objects",
                "data.train._target_=qwenvl.data.formats.Something",
                batch_size=4,
                val_size=8,
            )
        )


def test_objects_stage_refuses_fsdp_with_the_reason(tmp_path, compose_train):
    module, _, _ = build(compose_train(tmp_path, "stage=objects"))
    module._device_mesh = object()  # what ModelParallelStrategy sets before configure_model
    with pytest.raises(ValueError, match="not under FSDP"):
        module.configure_model()
