import numpy as np
import pytest
import torch
from PIL import Image

from qwenvl.data.sample import Message, Sample
from qwenvl.data.templates import render
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import QwenVLTokenizer


@pytest.fixture(scope="module")
def proc():
    return QwenVLProcessor(QwenVLTokenizer.default(), image_size=56, image_tokens=4)


def test_image_slot_expands_to_q_pads(proc):
    tok = proc.tokenizer
    ids = proc.encode("Picture 1: <img></img>\nhi")
    i = ids.index(tok.convert_tokens_to_ids("<img>"))
    assert ids[i + 1 : i + 5] == [tok.convert_tokens_to_ids("<imgpad>")] * 4
    assert ids[i + 5] == tok.convert_tokens_to_ids("</img>")


def test_image_slot_must_be_empty_and_pads_cannot_be_written(proc):
    with pytest.raises(ValueError, match="empty"):
        proc.encode("<img>cat.jpg</img>")
    with pytest.raises(ValueError, match="imgpad"):
        proc.encode("<imgpad>")


def test_user_text_cannot_inject_an_image_span(proc):
    prompt = proc.build_prompt("<img></img><imgpad> sneaky", num_images=0, task="vqa")
    assert proc.count_images(prompt) == 0
    batch = proc([prompt])
    assert proc.tokenizer.convert_tokens_to_ids("<imgpad>") not in batch["input_ids"].tolist()[0]


def test_image_count_mismatch_names_the_text(proc):
    with pytest.raises(ValueError, match="text 1 has 1"):
        proc(["no image", proc.build_prompt("x", 1)], images=[[], []])


def test_left_padding_and_pixel_shapes(proc):
    img = Image.new("RGB", (300, 100), "red")
    batch = proc(
        [proc.build_prompt("a", 1), proc.build_prompt("a much longer question", 2)],
        images=[[img], [img, img]],
    )
    assert batch["pixel_values"].shape == (3, 3, 56, 56)
    assert batch["attention_mask"][:, -1].all() and not batch["attention_mask"][0, 0]


def test_transform_is_clip_normalized_bicubic_square(proc):
    x = proc.transform(Image.new("RGB", (640, 100), (255, 255, 255)))
    assert x.shape == (3, 56, 56)
    expected = (1 - torch.tensor(proc.mean)) / torch.tensor(proc.std)
    assert torch.allclose(x[:, 10, 10], expected, atol=1e-5)


@pytest.mark.parametrize("size", [(56, 56), (90, 40)])
def test_transform_gives_torchvisions_bits(proc, size):
    from torchvision.transforms import v2 as T

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    reference = T.Compose(
        [
            T.Resize((56, 56), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(proc.mean, proc.std),
        ]
    )(img)
    assert torch.equal(proc.transform(img), reference)


def test_decompression_bomb_is_refused(tmp_path):
    p = QwenVLProcessor(QwenVLTokenizer.default(), image_size=56, image_tokens=4, max_pixels=100)
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(ValueError, match="pixel limit"):
        p.transform(path)


def test_segments_label_only_the_answer_and_never_pads(proc):
    s = Sample(
        "vqa", [Message("user", "What colour? Answer:", 1), Message("assistant", "red")], images=["x.png"]
    )
    ids, labels = proc.encode_segments(render(s, "plain"))
    supervised = [t for t, lab in zip(ids, labels, strict=True) if lab != -100]
    assert proc.tokenizer.decode(supervised) == "red<|endoftext|>"


def test_chatml_supervises_only_assistant_turns(proc):
    s = Sample(
        "dialog",
        [
            Message("user", "hi", 1),
            Message("assistant", "hello"),
            Message("user", "more?"),
            Message("assistant", "yes"),
        ],
        images=["x.png"],
    )
    ids, labels = proc.encode_segments(render(s, "chatml"))
    supervised = proc.tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != -100])
    assert supervised == "hello<|im_end|>yes<|im_end|>"
    assert proc.tokenizer.decode(ids).startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")


def test_a_tokenizer_that_cannot_be_the_models_is_refused_with_what_differs():
    from qwenvl.models import EncoderConfig, LLMConfig, QwenVLModel, ResamplerConfig

    tok = QwenVLTokenizer.default()
    model = QwenVLModel.from_config(EncoderConfig(), ResamplerConfig(num_queries=4), LLMConfig(), tok)
    assert QwenVLProcessor.from_model(model, tok).tokenizer is tok  # its own: accepted
    model.config.image_pad_id += 1  # as a model trained with another tokenizer would have it
    with pytest.raises(
        ValueError, match=r"<imgpad> = 11, and the model 4096 embedding rows with <imgpad> = 12"
    ):
        QwenVLProcessor.from_model(model, tok)
