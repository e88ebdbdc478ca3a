"""The training-step FLOP model: a case worked by hand, and agreement with PyTorch's FLOP counter."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from qwenvl.cli.bench import synthetic_batch
from qwenvl.models.adapter import MLPConfig, ResamplerConfig
from qwenvl.models.encoder import EncoderConfig
from qwenvl.models.llm import LLMConfig
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.tokenizer import QwenVLTokenizer
from qwenvl.training.flops import (
    encoder_forward,
    llm_forward,
    model_step_flops,
    resampler_forward,
    step_flops,
)
from qwenvl.training.stages import StageConfig, apply_freezing

STAGES = {
    "multitask": {"encoder": True, "adapter": True, "llm": True},
    "sft": {"encoder": False, "adapter": True, "llm": True},
    "pretrain": {"encoder": True, "adapter": True, "llm": False},
}


def _hand_case(trainable):
    # One 28-px image, patch 14 -> 4 patches; ViT width 8, 1 layer, MLP 32.
    # Resampler: 4 queries, kv width 8 -> width 16. LLM: hidden 16, 1 layer, 2 heads of 8, 1 KV
    # head, MLP 32, vocab 64, 8 positions (4 image + 4 text), 2 of them supervised.
    forwards = {
        "encoder": encoder_forward(images=1, patches=4, width=8, layers=1, mlp_hidden=32, patch_size=14),
        "adapter": resampler_forward(images=1, patches=4, queries=4, kv_width=8, width=16),
        "llm": llm_forward(
            batch=1, seq_len=8, supervised=2, hidden=16, layers=1, heads=2, kv_heads=1, head_dim=8,
            intermediate=32, vocab=64,
        ),
    }  # fmt: skip
    return step_flops(forwards, trainable)


def test_forward_flops_by_hand():
    f = _hand_case(STAGES["multitask"])
    # encoder: weights per patch 3*14*14*8 = 4704 (patch conv) + 4*8*8 + 2*8*32 = 768 (block)
    #   dense 2 * 5472 * 4 patches = 43776, of which the conv 2 * 4704 * 4 = 37632
    #   attention 4 * 4^2 * 8 = 512
    assert (f["encoder"].dense, f["encoder"].attention, f["encoder"].input_dense) == (43776, 512, 37632)
    # adapter: per patch 8*16 (kv proj) + 2*16*16 (k, v) = 640, per query 3*16*16 = 768
    #   dense 2 * (640*4 + 768*4) = 11264, kv proj 2 * 128 * 4 = 1024; attention 4*4*4*16 = 1024
    assert (f["adapter"].dense, f["adapter"].attention, f["adapter"].input_dense) == (11264, 1024, 1024)
    # llm: per layer q 16*16 + k 16*8 + v 16*8 + o 16*16 = 768, MLP 3*16*32 = 1536 -> 2304
    #   dense 2*2304*8 + head 2*16*64*2 = 36864 + 4096 = 40960; attention 4*8^2*16 / 2 = 2048
    assert (f["llm"].dense, f["llm"].attention) == (40960, 2048)
    assert f.forward == 44288 + 12288 + 43008 == 99584


def test_backward_flops_by_hand_for_each_stage():
    # Everything trained: weight grads + activation grads (2 x dense), attention 2 x; the patch
    # conv needs no pixel gradient: encoder 43776 + (43776 - 37632) + 2*512.
    f = _hand_case(STAGES["multitask"])
    assert [p.backward for p in f.parts] == [50944, 2 * 11264 + 2 * 1024, 2 * 40960 + 2 * 2048]
    assert f.total == 99584 + 50944 + 24576 + 86016 == 261120
    # Stage 3, encoder frozen: no encoder backward; the adapter's kv projection reads features
    # that need no gradient, so its input-gradient term goes: 2*11264 - 1024 + 2*1024.
    f = _hand_case(STAGES["sft"])
    assert [p.backward for p in f.parts] == [0, 23552, 86016]
    # Stage 1, LLM frozen: activation gradients only through the LLM (1 x dense), attention 2 x.
    f = _hand_case(STAGES["pretrain"])
    assert [p.backward for p in f.parts] == [50944, 24576, 40960 + 2 * 2048]


def _tiny(adapter, trainable, stem: str = "patch") -> QwenVLModel:
    tok = QwenVLTokenizer.default()
    model = QwenVLModel.from_config(
        EncoderConfig(
            image_size=56, patch_size=14 if stem == "patch" else 28, width=32, layers=2, heads=2, stem=stem
        ),
        adapter,
        LLMConfig(hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=96),
        tok,
    )
    apply_freezing(model, StageConfig(trainable=trainable))
    return model


@pytest.mark.parametrize(
    "stage,adapter",
    [("multitask", ResamplerConfig(num_queries=4)), ("sft", ResamplerConfig(num_queries=9)),
     ("pretrain", ResamplerConfig(num_queries=4)), ("multitask", MLPConfig())],
    ids=["multitask", "sft", "pretrain", "mlp-adapter"],
)  # fmt: skip
@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_model_flops_match_pytorchs_counter(stage, adapter, stem):
    model = _tiny(adapter, STAGES[stage], stem)
    batch_size, text = 2, 12
    batch = synthetic_batch(model, QwenVLTokenizer.default(), batch_size, text, seed=0)
    seq_len = batch["input_ids"].shape[1]
    flops = model_step_flops(model, batch_size, seq_len, text - 2, STAGES[stage])
    # The math kernel spells attention out as matmuls the counter sees; it computes the whole
    # causal square and masks it, one extra LLM attention forward (x1) and backward (x2).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    assert counter.get_total_flops() == flops.total + 3 * flops["llm"].attention
    assert (flops["encoder"].backward == 0) == (stage == "sft")


def test_model_flops_count_the_batchs_images_not_its_rows():
    """Two pictures a row: the encoder and adapter run on 4 images, the LLM on 2 rows."""
    trainable = STAGES["multitask"]
    model = _tiny(ResamplerConfig(num_queries=4), trainable)
    rows, text = 2, 12
    batch = synthetic_batch(model, QwenVLTokenizer.default(), rows, text, seed=0)
    span = model.image_tokens + 2  # <img>, Q pads, </img>
    ids = torch.cat([batch["input_ids"][:, :span], batch["input_ids"]], dim=1)
    labels = torch.cat([torch.full((rows, span), -100), batch["labels"]], dim=1)
    pixels = torch.cat([batch["pixel_values"], torch.randn_like(batch["pixel_values"])])
    flops = model_step_flops(model, rows, ids.shape[1], text - 2, trainable, images=4)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(
            input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, pixel_values=pixels
        ).loss.backward()
    assert counter.get_total_flops() == flops.total + 3 * flops["llm"].attention
    assert flops["encoder"] == model_step_flops(model, 4, ids.shape[1], text - 2, trainable)["encoder"]
    text_only = model_step_flops(model, rows, ids.shape[1], text - 2, trainable, images=0)
    assert text_only["encoder"].forward == text_only["adapter"].forward == 0
    assert text_only["llm"] == flops["llm"]
