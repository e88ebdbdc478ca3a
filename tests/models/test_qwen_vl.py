import pytest
import torch
from PIL import Image

from qwenvl import QwenVLModel, QwenVLProcessor
from qwenvl.models import EncoderConfig, LLMConfig, MLPConfig, ResamplerConfig
from qwenvl.tokenizer import QwenVLTokenizer


@pytest.fixture(scope="module")
def tok():
    return QwenVLTokenizer.default()


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16), tokenizer=tok).eval()


@pytest.fixture(scope="module")
def proc(model, tok):
    return QwenVLProcessor.from_model(model, tok)


def _img(colour):
    return Image.new("RGB", (64, 48), colour)


def test_image_features_land_exactly_on_the_pad_positions(model, proc):
    two = proc.build_prompt("compare", num_images=2)
    none = "no image at all, just text"
    inputs = proc([two, none], images=[[_img("red"), _img("blue")], []])
    with torch.no_grad():
        embeds = model.embed(inputs["input_ids"], inputs["pixel_values"])
        feats = model.encode_images(inputs["pixel_values"])  # (2, Q, D)
        plain = model.llm.get_input_embeddings()(inputs["input_ids"])
    is_pad = inputs["input_ids"] == model.config.image_pad_id
    assert int(is_pad[0].sum()) == 2 * model.image_tokens and int(is_pad[1].sum()) == 0
    assert torch.equal(embeds[0][is_pad[0]], feats.reshape(-1, feats.shape[-1]))
    assert torch.equal(embeds[~is_pad], plain[~is_pad])


def test_pad_count_mismatch_is_a_clear_error(model, proc):
    inputs = proc([proc.build_prompt("x", 1)], images=[[_img("red")]])
    with pytest.raises(ValueError, match="image pad tokens"):
        model.embed(inputs["input_ids"], torch.cat([inputs["pixel_values"]] * 2))
    with pytest.raises(ValueError, match="no pixel_values"):
        model.embed(inputs["input_ids"])


def test_loss_ignores_minus_100_labels(model, proc):
    inputs = proc([proc.build_prompt("what", 1) + "red"], images=[[_img("red")]])
    labels = inputs["input_ids"].clone()
    labels[:, :-3] = -100
    out = model(**inputs, labels=labels)
    with torch.no_grad():
        logits = model(**inputs).logits[0, -4:-1]  # full logits, computed without labels
    expected = torch.nn.functional.cross_entropy(logits, inputs["input_ids"][0, -3:])
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert out.token_loss.shape == (1, labels.shape[1] - 1)
    assert int((out.token_loss != 0).sum()) == 3


@pytest.mark.parametrize("tied", [False, True])
def test_save_load_gives_identical_logits(tmp_path, tok, tied):
    m = QwenVLModel.from_config(
        adapter=ResamplerConfig(num_queries=16), llm=LLMConfig(tie_word_embeddings=tied), tokenizer=tok
    ).eval()
    p = QwenVLProcessor.from_model(m, tok)
    m.save_pretrained(tmp_path)
    p.save_pretrained(tmp_path)
    m2 = QwenVLModel.from_pretrained(tmp_path).eval()
    p2 = QwenVLProcessor.from_pretrained(tmp_path)
    inputs = p2([p2.build_prompt("hello", 1)], images=[[_img("green")]])
    with torch.no_grad():
        assert torch.equal(m(**inputs).logits, m2(**inputs).logits)
    assert sorted(p.__dict__) == sorted(p2.__dict__) and p2.image_tokens == p.image_tokens


def test_from_pretrained_refuses_unknown_config_keys(tmp_path, model):
    model.save_pretrained(tmp_path)
    cfg = (tmp_path / "config.json").read_text().replace('"num_queries"', '"num_querys"')
    (tmp_path / "config.json").write_text(cfg)
    with pytest.raises(ValueError, match="num_querys"):
        QwenVLModel.from_pretrained(tmp_path)


def test_batched_generation_equals_one_by_one(model, proc):
    prompts = [
        proc.build_prompt("What colour is the shape?", 1, task="vqa"),
        proc.build_prompt("", 2, task="caption"),
        proc.build_prompt(
            "a much longer question about the picture, with many more words in it", 1, task="vqa"
        ),
    ]
    images = [[_img("red")], [_img("blue"), _img("white")], [_img("black")]]
    batch = model.generate(**proc(prompts, images=images), max_new_tokens=8)
    for i, (p, im) in enumerate(zip(prompts, images, strict=True)):
        alone = model.generate(**proc([p], images=[im]), max_new_tokens=8)[0]
        row = batch[i, : alone.shape[0]]
        assert torch.equal(row, alone), f"prompt {i}"


def test_sampling_is_seeded(model, proc):
    inputs = proc([proc.build_prompt("", 1, task="caption")], images=[[_img("red")]])
    torch.manual_seed(1)
    a = model.generate(**inputs, max_new_tokens=12, do_sample=True, temperature=1.5)
    torch.manual_seed(1)
    b = model.generate(**inputs, max_new_tokens=12, do_sample=True, temperature=1.5)
    assert torch.equal(a, b)


def test_generate_refuses_right_padding(model, proc):
    inputs = proc(["short", "a longer piece of text"], padding_side="right")
    with pytest.raises(ValueError, match="left-padded"):
        model.generate(**inputs, max_new_tokens=2)


def test_mlp_adapter_model_gives_one_token_per_patch(tok):
    m = QwenVLModel.from_config(adapter=MLPConfig(), tokenizer=tok)
    assert m.image_tokens == 16 * 16
    p = QwenVLProcessor.from_model(m, tok)
    out = m(**p([p.build_prompt("x", 1)], images=[[_img("red")]]))
    assert out.logits.shape[1] == len(p.encode(p.build_prompt("x", 1)))


def test_full_size_qwen_vl_has_about_9_6b_parameters_on_meta():
    from omegaconf import OmegaConf

    enc = EncoderConfig(**_yaml("encoder/vit_bigg_14.yaml", OmegaConf))
    enc.image_size = 448
    llm = LLMConfig(**_yaml("llm/qwen_7b.yaml", OmegaConf))
    with torch.device("meta"):
        m = QwenVLModel.from_config(encoder=enc, adapter=ResamplerConfig(), llm=llm)
    n = m.num_parameters()
    assert 9.5e9 < n < 9.7e9, n
    assert m.image_tokens == 256
    assert m.llm.config.vocab_size == 151936


def _yaml(rel, OmegaConf):
    from qwenvl.paths import CONF_DIR

    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / rel))
    cfg.pop("_target_")
    return cfg


def test_llm_loads_from_a_local_hf_checkpoint(tmp_path, tok):
    from qwenvl.models.llm import build_llm

    cfg = LLMConfig()
    source = build_llm(cfg, 4096)
    source.save_pretrained(tmp_path / "llm")  # a local HF directory, as a user would have
    model = QwenVLModel.from_config(
        adapter=ResamplerConfig(num_queries=16),
        llm=LLMConfig(pretrained=str(tmp_path / "llm")),
        tokenizer=tok,
    )
    for name, p in source.state_dict().items():
        assert torch.equal(model.llm.state_dict()[name], p), name
    with pytest.raises(FileNotFoundError, match="no config.json there"):  # the message, not the OS's
        QwenVLModel.from_config(llm=LLMConfig(pretrained=str(tmp_path / "missing")), tokenizer=tok)


def test_a_model_with_a_pretrained_llm_saves_a_directory_that_rebuilds_it(tmp_path, tok):
    """The LLM's shape comes from its checkpoint, not from the `llm` fields (left at their
    defaults here): save_pretrained must record the loaded shape, or the directory it writes
    builds another model."""
    from qwenvl.models.llm import build_llm

    other = LLMConfig(hidden_size=64, layers=1, heads=2, kv_heads=1, intermediate_size=96, rope_theta=5e5)
    build_llm(other, 4160).save_pretrained(tmp_path / "llm")  # more rows than the tokenizer needs
    llm = LLMConfig(pretrained=str(tmp_path / "llm"))
    model = QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16), llm=llm, tokenizer=tok)
    model.save_pretrained(tmp_path / "m")
    again = QwenVLModel.from_pretrained(tmp_path / "m")
    assert again.config.llm.pretrained is None and again.config.llm.hidden_size == 64
    assert again.llm.config.rope_parameters["rope_theta"] == 5e5
    ours, theirs = model.state_dict(), again.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
