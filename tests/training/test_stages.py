import pytest
import torch

from qwenvl.cli.train import build, train
from qwenvl.models.qwen_vl import QwenVLOutput
from qwenvl.training.module import QwenVLLitModule, sample_losses, sample_mean_loss
from qwenvl.training.optim import part_of
from qwenvl.training.stages import StageConfig

EXPECTED = {
    "lm": {"encoder": False, "adapter": False, "llm": True},
    "warmup": {"encoder": False, "adapter": True, "llm": True},
    "pretrain": {"encoder": True, "adapter": True, "llm": False},
    "multitask": {"encoder": True, "adapter": True, "llm": True},
    "multitask_224": {"encoder": False, "adapter": True, "llm": True},
    "sft": {"encoder": False, "adapter": True, "llm": True},
    "locate": {"encoder": True, "adapter": True, "llm": True},
    "lookups": {"encoder": False, "adapter": True, "llm": True},
}


@pytest.mark.parametrize("stage", list(EXPECTED))
def test_freezing_rules_give_grads_and_optimizer_state_only_to_trained_parts(tmp_path, stage, compose_train):
    module, datamodule, _ = build(compose_train(tmp_path, f"stage={stage}", "stage.image_size=224"))
    batch = next(iter(datamodule.train_dataloader()))
    loss = module(batch).loss
    loss.backward()
    opt = module.configure_optimizers()["optimizer"]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    for part, trained in EXPECTED[stage].items():
        params = list(getattr(module.model, part).parameters())
        assert all(p.requires_grad == trained for p in params), part
        assert all((p.grad is not None) == trained for p in params), part
        assert all((id(p) in in_opt) == trained for p in params), part


def test_no_weight_decay_on_norms_biases_embeddings_and_queries(tmp_path, compose_train):
    module, _, _ = build(compose_train(tmp_path, "stage=multitask", "stage.image_size=224"))
    opt = module.configure_optimizers()["optimizer"]
    names = {id(p): n for n, p in module.model.named_parameters()}
    no_decay = [names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]]
    decay = [names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]]
    assert any("embed_tokens" in n for n in no_decay) and any(n.endswith("query") for n in no_decay)
    assert any("norm" in n for n in no_decay) and any(n.endswith("bias") for n in no_decay)
    assert all(not n.endswith("bias") and "embed_tokens" not in n for n in decay)


def test_a_part_learns_at_its_scaled_rate_through_the_schedule(tmp_path, compose_train):
    cfg = compose_train(
        tmp_path,
        "stage=multitask",
        "stage.image_size=224",
        "stage.lr=0.002",
        "stage.lr_scale={encoder: 0.25}",
    )
    module, _, _ = build(cfg)
    optimizers = module.configure_optimizers()
    opt, sched = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    names = {id(p): n for n, p in module.named_parameters()}
    grouped = [names[id(p)] for g in opt.param_groups for p in g["params"]]
    trained = [n for n, p in module.named_parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trained)  # each trained parameter in exactly one group
    for _ in range(30):  # through the warm-up and into the cosine decay
        opt.step()
        sched.step()
    base = opt.param_groups[0]["lr"]  # the rate that is logged: the stage's own
    assert 0 < base < 0.002
    for g in opt.param_groups:
        parts = {part_of(names[id(p)]) for p in g["params"]}
        want = base * 0.25 if parts == {"encoder"} else base
        assert "encoder" not in parts or parts == {"encoder"}
        assert g["lr"] == pytest.approx(want)


def test_a_learning_rate_scale_for_an_unknown_part_is_refused():
    with pytest.raises(ValueError, match=r"lr_scale has unknown parts \['vision'\]; parts are"):
        StageConfig(lr_scale={"vision": 0.1})


@pytest.mark.parametrize("stage", list(EXPECTED))
def test_each_stage_runs_a_few_steps(tmp_path, stage, compose_train):
    metrics = train(
        compose_train(tmp_path, f"stage={stage}", "max_steps=2", "stage.image_size=224", "callbacks=default")
    )
    assert metrics["val/loss"] > 0 and (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_init_from_across_a_resolution_change(tmp_path, compose_train):
    first = train(compose_train(tmp_path / "s1", "stage=pretrain", "max_steps=1", "callbacks=default"))
    ckpt = torch.load(
        first["checkpoint"], weights_only=True, map_location="cpu"
    )  # loads without unpickling code
    pos224 = ckpt["state_dict"]["model.encoder.positional_embedding"]
    assert pos224.shape[0] == 8 * 8  # the tiny encoder: 28-px patches
    cfg = compose_train(tmp_path / "s2", "stage=multitask", f"stage.init_from={first['checkpoint']}")
    module = QwenVLLitModule(**{k: cfg[k] for k in ("encoder", "adapter", "llm", "stage")})
    pos448 = module.model.encoder.positional_embedding
    assert pos448.shape[0] == 16 * 16
    assert torch.allclose(pos448.mean(), pos224.mean(), atol=0.05)
    llm_before = ckpt["state_dict"]["model.llm.model.embed_tokens.weight"]
    assert torch.equal(module.model.llm.model.embed_tokens.weight, llm_before)


def test_a_stage_caps_the_synthetic_worlds_shapes_per_task(tmp_path, compose_train):
    cfg = compose_train(
        tmp_path, "stage=warmup", "+stage.max_objects={grounding: 1}", "stage.tasks=[grounding,caption]"
    )
    _, datamodule, _ = build(cfg)
    world = datamodule.train_set
    shapes = {
        t: [len(world.make(i, task=t).meta["scene"]["objects"]) for i in range(30)]
        for t in ("grounding", "caption")
    }
    assert set(shapes["grounding"]) == {1} and max(shapes["caption"]) == 4
    _, datamodule, _ = build(compose_train(tmp_path, "stage=warmup", "+stage.max_objects=2"))
    assert (
        max(len(datamodule.train_set.make(i, task="caption").meta["scene"]["objects"]) for i in range(30))
        == 2
    )


def test_the_locate_stage_shows_grounding_on_one_shape_pictures(tmp_path, compose_train):
    _, datamodule, _ = build(compose_train(tmp_path, "stage=locate"))
    world = datamodule.train_set
    assert world.tasks == ["grounding"] and world.settings.image_size == 224
    assert {len(world[i].meta["scene"]["objects"]) for i in range(20)} == {1}


def _two_answers():
    """Losses [3, 4]: answers of 1 token (loss 4) and of 3 (1, 1, 1), then a row of prompt only."""
    token_loss = torch.tensor([[4.0, 0, 0, 0], [1.0, 1.0, 1.0, 0], [0, 0, 0, 0]])
    labels = torch.full((3, 5), -100)
    labels[0, 1], labels[1, 1:4] = 7, 7
    owner = torch.arange(3).unsqueeze(1).expand(3, 5)
    return token_loss, labels, owner


def test_the_sample_mean_weighs_each_sample_once_whatever_its_answer_length():
    token_loss, labels, owner = _two_answers()
    assert sample_mean_loss(token_loss, labels, owner, 3).item() == pytest.approx((4 + 1) / 2)
    assert sample_losses(token_loss, labels, owner, 3).tolist() == [4.0, 1.0, 0.0]


def test_a_stage_trains_on_the_loss_mean_it_names(tmp_path, compose_train):
    with pytest.raises(ValueError, match=r"stage.loss_mean='samples'; expected one of \('token', 'sample'\)"):
        StageConfig(loss_mean="samples")
    token_loss, labels, owner = _two_answers()
    out = QwenVLOutput(loss=token_loss.sum() / 4, token_loss=token_loss)  # the model's token mean, 7 / 4
    batch = {"labels": labels, "sample_index": owner, "tasks": ["vqa", "caption", "text"]}
    for mean, want in (("token", 7 / 4), ("sample", 5 / 2)):
        cfg = compose_train(tmp_path, "stage=multitask", "stage.image_size=224", f"stage.loss_mean={mean}")
        module = QwenVLLitModule(**{k: cfg[k] for k in ("encoder", "adapter", "llm", "stage")})
        assert module.loss(out, batch).item() == pytest.approx(want)
