"""Converting the released Qwen-VL checkpoint layout, checked against a plain-torch reference.

The reference below reads the raw released tensors and implements the released architecture from its
description (per-head interleaved encoder QKV, [Q;K;V] c_attn, w1 * silu(w2) MLP, RMSNorm, rotary),
sharing no code with the platform; the converted model must agree with it to float32 precision.
"""

import base64
import json
import math
from importlib.metadata import entry_points

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import save_file

from qwenvl import QwenVLModel, QwenVLProcessor
from qwenvl.cli.convert import main as convert_main
from qwenvl.models import QwenVLConfig
from qwenvl.models.convert import (
    convert_state_dict,
    is_released_dir,
    meta_model,
    released_key_map,
)
from qwenvl.paths import CONF_DIR

V = "transformer.visual."
P = V + "attn_pool."
# Tiny sizes with the released structure. Grids differ on purpose: the 3x3 encoder table and the
# 4x4 query grid are both resized to the 6x6 patch grid, as 16x16 -> 32x32 in the release.
ENC_W, ENC_L, ENC_H, PATCH, IMAGE, POS_SIDE, MLP_RATIO = 32, 2, 4, 14, 84, 3, 4.9231
QUERIES, D, LAYERS, HEADS, VOCAB, FFN = 16, 256, 2, 4, 512, 344
N_RANKS = 256  # a rank file of the 256 single bytes: specials take ids 256..472
IMG_START_ID, IMG_PAD_ID = N_RANKS + 214, N_RANKS + 216
TINY_CONFIG = {
    "architectures": ["QWenLMHeadModel"],
    "model_type": "qwen",
    "hidden_size": D,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "kv_channels": D // HEADS,
    "intermediate_size": 2 * FFN,  # QWen counts both MLP branches
    "layer_norm_epsilon": 1e-6,
    "rotary_emb_base": 10000,
    "rotary_pct": 1.0,
    "vocab_size": VOCAB,
    "seq_length": 2048,
    "max_position_embeddings": 8192,
    "no_bias": True,
    "tie_word_embeddings": False,
    "use_dynamic_ntk": True,
    "use_logn_attn": True,
    "visual": {
        "heads": ENC_H, "image_size": IMAGE, "image_start_id": IMG_START_ID, "layers": ENC_L,
        "mlp_ratio": MLP_RATIO, "output_dim": D, "patch_size": PATCH, "width": ENC_W,
    },
}  # fmt: skip
FULL_CONFIG = {
    **TINY_CONFIG,
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "kv_channels": 128,
    "intermediate_size": 22016,
    "vocab_size": 151936,
    "visual": {
        "heads": 16, "image_size": 448, "image_start_id": 151857, "layers": 48, "mlp_ratio": 4.9231,
        "output_dim": 4096, "patch_size": 14, "width": 1664,
    },
}  # fmt: skip


# -- the released layout ---------------------------------------------------------------------
def released_shapes(enc_w, enc_l, mlp, pos_rows, queries, d, layers, ffn, vocab) -> dict[str, tuple]:
    """Every tensor of the released checkpoint with its shape, written out from the layout facts."""
    s = {
        V + "conv1.weight": (enc_w, 3, PATCH, PATCH),
        V + "positional_embedding": (pos_rows, enc_w),
        V + "ln_pre.weight": (enc_w,), V + "ln_pre.bias": (enc_w,),
        P + "query": (queries, d), P + "pos_embed": (queries, d), P + "kv_proj.weight": (d, enc_w),
        P + "ln_q.weight": (d,), P + "ln_q.bias": (d,), P + "ln_kv.weight": (d,), P + "ln_kv.bias": (d,),
        P + "attn.in_proj_weight": (3 * d, d), P + "attn.in_proj_bias": (3 * d,),
        P + "attn.out_proj.weight": (d, d), P + "attn.out_proj.bias": (d,),
        V + "ln_post.weight": (d,), V + "ln_post.bias": (d,), V + "proj": (d, d),
        "transformer.wte.weight": (vocab, d), "transformer.ln_f.weight": (d,), "lm_head.weight": (vocab, d),
    }  # fmt: skip
    for i in range(enc_l):
        b = f"{V}transformer.resblocks.{i}."
        linears = (("attn.in_proj", 3 * enc_w, enc_w), ("attn.out_proj", enc_w, enc_w))
        for name, n_out, n_in in (*linears, ("mlp.c_fc", mlp, enc_w), ("mlp.c_proj", enc_w, mlp)):
            s[f"{b}{name}.weight"], s[f"{b}{name}.bias"] = (n_out, n_in), (n_out,)
        for name in ("ln_1", "ln_2"):
            s[f"{b}{name}.weight"] = s[f"{b}{name}.bias"] = (enc_w,)
    for i in range(layers):
        b = f"transformer.h.{i}."
        s[b + "attn.c_attn.weight"], s[b + "attn.c_attn.bias"] = (3 * d, d), (3 * d,)  # [Q; K; V] rows
        s[b + "attn.c_proj.weight"] = (d, d)
        s[b + "mlp.w1.weight"] = s[b + "mlp.w2.weight"] = (ffn, d)
        s[b + "mlp.c_proj.weight"] = (d, ffn)
        s[b + "ln_1.weight"] = s[b + "ln_2.weight"] = (d,)
    return s


def sincos_table(dim: int, side: int) -> torch.Tensor:
    """MAE's get_2d_sincos_pos_embed, as Qwen-VL builds its fixed adapter table (column half first)."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.double()[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return torch.cat([one_d(dim // 2, cols.flatten()), one_d(dim // 2, rows.flatten())], dim=1).float()


def tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mlp = int(ENC_W * MLP_RATIO)
    shapes = released_shapes(ENC_W, ENC_L, mlp, POS_SIDE**2, QUERIES, D, LAYERS, FFN, VOCAB)
    state = {}
    for key, shape in shapes.items():
        if ".ln_" in key and key.endswith(".weight"):
            state[key] = 1 + 0.2 * torch.randn(shape, generator=g)  # norms: near 1, not exactly
        elif key.endswith(("bias", "positional_embedding", "query")):
            state[key] = 0.3 * torch.randn(shape, generator=g)
        else:  # matrices scaled by fan-in so activations stay O(1)
            state[key] = torch.randn(shape, generator=g) * math.prod(shape[1:]) ** -0.5
    state[P + "pos_embed"] = sincos_table(D, int(math.isqrt(QUERIES)))
    return state


def write_released(directory, state, layout: str) -> None:
    """Two shards (visual / language) plus an index JSON, config.json and a tiny qwen.tiktoken."""
    directory.mkdir(parents=True, exist_ok=True)
    parts = [{k: v for k, v in state.items() if k.startswith(V)}]
    parts.append({k: v for k, v in state.items() if not k.startswith(V)})
    weight_map = {}
    for i, part in enumerate(parts, start=1):
        part = {k: v.clone().contiguous() for k, v in part.items()}
        if layout == "bin":
            name = f"pytorch_model-{i:05d}-of-00002.bin"
            torch.save(part, directory / name)
        else:
            name = f"model-{i:05d}-of-00002.safetensors"
            save_file(part, str(directory / name))
        weight_map |= dict.fromkeys(part, name)
    index = "pytorch_model.bin.index.json" if layout == "bin" else "model.safetensors.index.json"
    (directory / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (directory / "config.json").write_text(json.dumps(TINY_CONFIG))
    (directory / "qwen.tiktoken").write_bytes(
        b"".join(base64.b64encode(bytes([i])) + b" %d\n" % i for i in range(256))
    )


# -- plain-torch reference -------------------------------------------------------------------
def layer_norm(x, s, key, eps=1e-6):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * s[key + ".weight"] + s[key + ".bias"]


def rms_norm(x, weight, eps=1e-6):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def attention(q, k, v, causal=False):
    """q [.., Nq, H, hd], k/v [.., Nk, H, hd] -> [.., Nq, H, hd]."""
    scores = torch.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(q.shape[-1])
    if causal:
        n = q.shape[-3]
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return torch.einsum("...hqk,...khd->...qhd", scores.softmax(-1), v)


def bicubic(table, src, dst):
    grid = table.reshape(1, src, src, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, size=(dst, dst), mode="bicubic", align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(dst * dst, -1)


def ref_image_features(s, pixels):
    """[B, 3, S, S] -> [B, Q, D], straight from the released tensors."""
    b, g = pixels.shape[0], IMAGE // PATCH
    patches = pixels.reshape(b, 3, g, PATCH, g, PATCH).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
    x = patches @ s[V + "conv1.weight"].reshape(ENC_W, -1).T
    x = layer_norm(x + bicubic(s[V + "positional_embedding"], POS_SIDE, g), s, V + "ln_pre")
    hd = ENC_W // ENC_H
    for i in range(ENC_L):
        p = f"{V}transformer.resblocks.{i}."
        h = layer_norm(x, s, p + "ln_1")
        qkv = (h @ s[p + "attn.in_proj.weight"].T + s[p + "attn.in_proj.bias"]).reshape(
            b, g * g, ENC_H, 3, hd
        )
        a = attention(qkv[..., 0, :], qkv[..., 1, :], qkv[..., 2, :]).reshape(b, g * g, ENC_W)
        x = x + a @ s[p + "attn.out_proj.weight"].T + s[p + "attn.out_proj.bias"]
        h = layer_norm(x, s, p + "ln_2") @ s[p + "mlp.c_fc.weight"].T + s[p + "mlp.c_fc.bias"]
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # exact GELU
        x = x + h @ s[p + "mlp.c_proj.weight"].T + s[p + "mlp.c_proj.bias"]
    kv = layer_norm(x @ s[P + "kv_proj.weight"].T, s, P + "ln_kv")
    pos = s[P + "pos_embed"]
    q = layer_norm(s[P + "query"], s, P + "ln_q") + pos
    k = kv + bicubic(pos, int(math.isqrt(QUERIES)), g)
    wq, wk, wv = s[P + "attn.in_proj_weight"].chunk(3)
    bq, bk, bv = s[P + "attn.in_proj_bias"].chunk(3)
    heads = D // 128
    q = (q @ wq.T + bq).reshape(QUERIES, heads, -1).expand(b, -1, -1, -1)
    k = (k @ wk.T + bk).reshape(b, g * g, heads, -1)
    v = (kv @ wv.T + bv).reshape(b, g * g, heads, -1)
    out = (
        attention(q, k, v).reshape(b, QUERIES, D) @ s[P + "attn.out_proj.weight"].T
        + s[P + "attn.out_proj.bias"]
    )
    return layer_norm(out, s, V + "ln_post") @ s[V + "proj"]


def rotate(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def ref_logits(s, ids, feats):
    """ids [T] (image pads filled by feats in order) -> logits [T, V]: QWen's decoder by hand."""
    h = s["transformer.wte.weight"][ids].clone()
    h[ids == IMG_PAD_ID] = feats.reshape(-1, D)
    hd, t = D // HEADS, ids.shape[0]
    inv = 1.0 / 10000 ** (torch.arange(0, hd, 2).float() / hd)
    ang = torch.arange(t).float()[:, None] * inv
    ang = torch.cat([ang, ang], dim=-1)[:, None, :]  # (T, 1, hd)
    cos, sin = ang.cos(), ang.sin()
    for i in range(LAYERS):
        p = f"transformer.h.{i}."
        x = rms_norm(h, s[p + "ln_1.weight"])
        q, k, v = (x @ s[p + "attn.c_attn.weight"].T + s[p + "attn.c_attn.bias"]).split(D, dim=-1)
        q, k, v = (y.reshape(t, HEADS, hd) for y in (q, k, v))
        a = attention(rotate(q, cos, sin), rotate(k, cos, sin), v, causal=True).reshape(t, D)
        h = h + a @ s[p + "attn.c_proj.weight"].T
        x = rms_norm(h, s[p + "ln_2.weight"])
        gated = (x @ s[p + "mlp.w1.weight"].T) * F.silu(x @ s[p + "mlp.w2.weight"].T)
        h = h + gated @ s[p + "mlp.c_proj.weight"].T
    return rms_norm(h, s["transformer.ln_f.weight"]) @ s["lm_head.weight"].T


def rel_err(ours, ref):
    return ((ours - ref).abs().max() / ref.abs().max()).item()


# -- tests -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def state():
    return tiny_state()


@pytest.fixture(scope="module")
def reference(state):
    torch.manual_seed(1)
    pixels = torch.randn(2, 3, IMAGE, IMAGE)
    with torch.no_grad():
        feats = ref_image_features(state, pixels)
    return pixels, feats


def test_console_script_is_declared():
    assert any(ep.name == "qwenvl-convert" for ep in entry_points(group="console_scripts"))


@pytest.mark.parametrize("layout", ["bin", "safetensors"])
def test_converted_model_matches_the_reference(tmp_path, state, reference, layout, capsys):
    src, out = tmp_path / "Qwen-VL", tmp_path / "converted"
    write_released(src, state, layout)
    assert is_released_dir(src)
    assert convert_main([str(src), str(out)]) == 0
    assert f"converted {len(state)} tensors" in capsys.readouterr().out
    assert not is_released_dir(out)

    proc = QwenVLProcessor.from_pretrained(out)
    assert (proc.image_size, proc.image_tokens) == (IMAGE, QUERIES)
    ids = proc.encode("Picture 1: <img></img>\nPicture 2: <img></img>\nWhat is in the pictures?")
    assert ids.count(IMG_PAD_ID) == 2 * QUERIES
    ids = torch.tensor(ids)
    pixels, ref_feats = reference
    with torch.no_grad():
        expected = ref_logits(state, ids, ref_feats)

    for source in (out, src):  # the converted directory, and the released one loaded directly
        model = QwenVLModel.from_pretrained(source).eval()
        assert model.config.image_pad_id == IMG_PAD_ID
        with torch.no_grad():
            feats = model.encode_images(pixels)
            logits = model(ids[None], pixel_values=pixels).logits[0]
        assert rel_err(feats, ref_feats) <= 1e-5, source
        assert rel_err(logits, expected) <= 1e-5, source


def test_dtype_is_applied_when_loading_a_released_directory(tmp_path, state):
    write_released(tmp_path, state, "safetensors")
    model = QwenVLModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert (
        model.llm.lm_head.weight.dtype == torch.bfloat16
        and model.encoder.conv1.weight.dtype == torch.bfloat16
    )
    assert model.adapter.pos_embed.dtype == torch.float32  # rebuilt fixed tables stay exact


def test_full_size_layout_maps_all_853_tensors_onto_the_configured_model():
    shapes = released_shapes(1664, 48, 8192, 256, 256, 4096, 32, 11008, 151936)
    assert len(shapes) == 853
    src = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    ours, config = convert_state_dict(src, FULL_CONFIG)
    assert set(released_key_map(config)) == set(shapes)

    names = {"encoder": "qwen_vl", "adapter": "resampler", "llm": "qwen_7b"}
    conf = {
        part: instantiate(OmegaConf.load(CONF_DIR / part / f"{name}.yaml")) for part, name in names.items()
    }
    assert config.encoder == conf["encoder"] and config.llm == conf["llm"]
    model = meta_model(QwenVLConfig(**conf, vocab_size=151936))
    own = model.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in own.items()}
    assert model.adapter.attn.num_heads == 32
    model.load_state_dict(ours, strict=True, assign=True)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(9.6e9, rel=0.01)
    assert config.image_pad_id == 151859 and config.pad_token_id == 151643
    assert config.eos_token_ids == [151645, 151643]


def test_missing_unexpected_and_misshapen_tensors_are_named(state, tmp_path):
    broken = dict(state)
    del broken["transformer.h.1.mlp.w1.weight"]
    broken["transformer.h.0.mlp.extra.weight"] = torch.zeros(3)
    broken[P + "kv_proj.weight"] = torch.zeros(D, ENC_W + 1)
    with pytest.raises(ValueError) as err:
        convert_state_dict(broken, TINY_CONFIG)
    message = str(err.value)
    assert "transformer.h.1.mlp.w1.weight" in message and "transformer.h.0.mlp.extra.weight" in message
    assert f"{P}kv_proj.weight ({D}, {ENC_W + 1}) (expected ({D}, {ENC_W}))" in message

    del broken["transformer.h.0.mlp.extra.weight"], broken[P + "kv_proj.weight"]
    write_released(tmp_path, broken, "bin")
    with pytest.raises(ValueError, match=r"missing tensors: transformer\.h\.1\.mlp\.w1\.weight"):
        QwenVLModel.from_pretrained(tmp_path)


def test_a_different_adapter_position_table_warns(state):
    changed = dict(state)
    changed[P + "pos_embed"] = state[P + "pos_embed"] + 0.01
    with pytest.warns(UserWarning, match="pos_embed differs"):
        convert_state_dict(changed, TINY_CONFIG)


def test_shard_names_must_stay_inside_the_directory(tmp_path, state):
    write_released(tmp_path, state, "safetensors")
    index = tmp_path / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors"
    index.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="plain file names"):
        QwenVLModel.from_pretrained(tmp_path)


def test_evaluation_reads_a_released_directory_with_its_own_tokenizer(tmp_path, state):
    """`qwenvl-eval ckpt=` on the released directory itself: its qwen.tiktoken, not the built-in
    BPE (whose <imgpad> would leave every picture out)."""
    from qwenvl.evaluation.load import load_for_eval

    write_released(tmp_path, state, "safetensors")
    _, proc = load_for_eval(tmp_path)
    ids = proc.encode("Picture 1: <img></img>\nWhat is in the picture?")
    assert ids.count(IMG_PAD_ID) == QUERIES
