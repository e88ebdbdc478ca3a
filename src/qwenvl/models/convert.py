"""The released Qwen-VL checkpoint (HF layout, `transformer.*` keys) -> a QwenVLModel.

    qwenvl-convert Qwen-VL/ checkpoints/qwen_vl         # config.json + model.safetensors + tokenizer
    model = QwenVLModel.from_pretrained("Qwen-VL/")     # or load the released directory directly

The released directory holds `config.json` (QWen's own keys), weight shards (`pytorch_model-*.bin`
or `model-*.safetensors`, with an index JSON) and `qwen.tiktoken`. The tensors map one to one except:

- encoder `attn.in_proj` rows are interleaved per head ([q_h, k_h, v_h] for each head h); they
  are permuted to nn.MultiheadAttention's [Q; K; V] blocks;
- LLM `attn.c_attn` ([Q; K; V] rows) splits into q_proj / k_proj / v_proj;
- LLM `mlp.w2` is the gated (SiLU) branch, so w2 -> gate_proj and w1 -> up_proj;
- the adapter's fixed sin-cos `pos_embed` is checked against ours and dropped (we rebuild it).

QWen's dynamic NTK and log-n attention scaling only act beyond `seq_length` (2048) tokens; they have
no Qwen2 counterpart, so outputs match the original for inputs up to that length.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from qwenvl.models.adapter import Resampler, ResamplerConfig
from qwenvl.models.config import QwenVLConfig
from qwenvl.models.encoder import EncoderConfig
from qwenvl.models.llm import LLMConfig
from qwenvl.models.posembed import sincos_2d
from qwenvl.qwen_tiktoken import QWEN_SPECIAL_TOKENS, QwenTiktokenTokenizer, special_token_ids
from qwenvl.tokenizer import ENDOFTEXT, IM_END, IMG_PAD, IMG_START

VISUAL = "transformer.visual."
POOL = VISUAL + "attn_pool."
# Derived buffers that some exports save although they are not weights: skipped, never required.
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILE = "qwen.tiktoken"

Transform = Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, ...]]
# src key -> (dst key, or a tuple of keys the transform's outputs go to, or None: checked then dropped)
KeyMap = dict[str, tuple[str | tuple[str, ...] | None, Transform]]


@dataclass
class ConversionReport:
    tensors: int  # source tensors read
    parameters: int  # parameters of the converted model
    config: QwenVLConfig


# -- configuration -----------------------------------------------------------------------------
def _need(d: dict, key: str, where: str):
    if key not in d:
        raise ValueError(f"{where}: missing key {key!r}; is this a released Qwen-VL config.json?")
    return d[key]


def _mlp_ratio(width: int, mlp_width: int) -> float:
    """A ratio r with int(width * r) == mlp_width, which is how open_clip sizes its MLP."""
    r = mlp_width / width
    while int(width * r) < mlp_width:  # float rounding can land just below the integer
        r = math.nextafter(r, math.inf)
    return r


def released_config(qwen: dict, pos_grid: int = 16, num_queries: int = 256) -> QwenVLConfig:
    """Our config from a released config.json dict.

    `pos_grid` (side of the encoder's learned position table) and `num_queries` are fixed in QWen's
    code, not in its config (16 and 256); callers pass the sizes found in the weights.
    """
    where = "config.json"
    vis = _need(qwen, "visual", where)
    hidden, heads = _need(qwen, "hidden_size", where), _need(qwen, "num_attention_heads", where)
    if qwen.get("kv_channels", hidden / heads) * heads != hidden:
        raise ValueError(f"{where}: kv_channels x {heads} heads != hidden_size {hidden}")
    if qwen.get("rotary_pct", 1.0) != 1.0:
        raise ValueError(
            f"{where}: rotary_pct {qwen['rotary_pct']} is not supported (Qwen2 rotates all dims)"
        )
    width = _need(vis, "width", f"{where}: visual")
    output_dim = vis.get("output_dim", hidden)
    if output_dim != hidden:
        raise ValueError(f"{where}: visual.output_dim {output_dim} != hidden_size {hidden}")
    if output_dim // 128 < 1:
        raise ValueError(
            f"{where}: visual.output_dim {output_dim} gives no adapter heads (output_dim // 128)"
        )
    encoder = EncoderConfig(
        image_size=_need(vis, "image_size", f"{where}: visual"),
        patch_size=_need(vis, "patch_size", f"{where}: visual"),
        width=width,
        layers=_need(vis, "layers", f"{where}: visual"),
        heads=_need(vis, "heads", f"{where}: visual"),
        mlp_ratio=_mlp_ratio(width, int(width * _need(vis, "mlp_ratio", f"{where}: visual"))),
        ln_eps=1e-6,
        pos_grid=pos_grid,
        final_ln=False,
    )
    adapter = ResamplerConfig(
        num_queries=num_queries, heads=output_dim // 128, pos_embed="sincos2d", ln_eps=1e-6
    )
    llm = LLMConfig(
        vocab_size=_need(qwen, "vocab_size", where),
        hidden_size=hidden,
        layers=_need(qwen, "num_hidden_layers", where),
        heads=heads,
        kv_heads=heads,
        intermediate_size=_need(qwen, "intermediate_size", where) // 2,  # QWen counts both MLP branches
        rms_norm_eps=qwen.get("layer_norm_epsilon", 1e-6),
        rope_theta=float(qwen.get("rotary_emb_base", 10000.0)),
        max_position_embeddings=qwen.get("max_position_embeddings", 8192),
        tie_word_embeddings=bool(qwen.get("tie_word_embeddings", False)),
    )
    # The special ids follow the BPE ranks in a fixed order, so <img>'s id fixes all of them.
    ids = special_token_ids(
        _need(vis, "image_start_id", f"{where}: visual") - QWEN_SPECIAL_TOKENS.index(IMG_START)
    )
    return QwenVLConfig(
        encoder=encoder,
        adapter=adapter,
        llm=llm,
        vocab_size=llm.vocab_size,
        image_pad_id=ids[IMG_PAD],
        pad_token_id=ids[ENDOFTEXT],
        eos_token_ids=[ids[IM_END], ids[ENDOFTEXT]],
    )


# -- key map -----------------------------------------------------------------------------------
def _same(t: torch.Tensor) -> torch.Tensor:
    return t


def _split_qkv(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """[3D, ...] -> three [D, ...] views (`_convert_into` copies them apart)."""
    return t.chunk(3, dim=0)


def _deinterleave(heads: int) -> Transform:
    """Rows [h0: q k v | h1: q k v | ...] -> [Q (all heads); K; V]; works for weight and bias."""

    def transform(t: torch.Tensor) -> torch.Tensor:
        hd = t.shape[0] // (3 * heads)
        return t.reshape(heads, 3, hd, *t.shape[1:]).transpose(0, 1).reshape(t.shape)

    return transform


def _check_pos_embed(width: int, grid: int) -> Transform:
    """Warn if the released fixed table differs from ours; the tensor itself is dropped."""

    def check(t: torch.Tensor) -> torch.Tensor:
        if t.is_meta:
            return t
        ours = sincos_2d(width, grid, grid)
        # A bfloat16 checkpoint stores the table rounded; allow that rounding, nothing more.
        tol = max(1e-5, torch.finfo(t.dtype).eps) if t.is_floating_point() else 1e-5
        err = (t.float() - ours).abs().max().item()
        if err > tol:
            warnings.warn(
                f"{POOL}pos_embed differs from sincos_2d({width}, {grid}, {grid}) by up to {err:.3g}; "
                "it is replaced by the built-in table",
                stacklevel=2,
            )
        return t

    return check


def released_key_map(config: QwenVLConfig | dict) -> KeyMap:
    """Every released tensor name -> (our name(s), transform). A dict is a released config.json."""
    if isinstance(config, dict):
        config = released_config(config)
    enc, llm, ad = config.encoder, config.llm, config.adapter
    m: KeyMap = {
        VISUAL + "conv1.weight": ("encoder.conv1.weight", _same),
        VISUAL + "positional_embedding": ("encoder.positional_embedding", _same),
        POOL + "pos_embed": (None, _check_pos_embed(llm.hidden_size, math.isqrt(ad.num_queries))),
        POOL + "query": ("adapter.query", _same),
        POOL + "attn.in_proj_weight": ("adapter.attn.in_proj_weight", _same),
        POOL + "attn.in_proj_bias": ("adapter.attn.in_proj_bias", _same),
        VISUAL + "proj": ("adapter.proj", _same),
        "transformer.wte.weight": ("llm.model.embed_tokens.weight", _same),
        "transformer.ln_f.weight": ("llm.model.norm.weight", _same),
        "lm_head.weight": ("llm.lm_head.weight", _same),
    }
    if enc.width != llm.hidden_size:  # otherwise both sides use an identity
        m[POOL + "kv_proj.weight"] = ("adapter.kv_proj.weight", _same)
    for p in ("weight", "bias"):
        m[f"{VISUAL}ln_pre.{p}"] = (f"encoder.ln_pre.{p}", _same)
        m[f"{VISUAL}ln_post.{p}"] = (f"adapter.ln_post.{p}", _same)
        m[f"{POOL}attn.out_proj.{p}"] = (f"adapter.attn.out_proj.{p}", _same)
        for ln in ("ln_q", "ln_kv"):
            m[f"{POOL}{ln}.{p}"] = (f"adapter.{ln}.{p}", _same)
    deinterleave = _deinterleave(enc.heads)
    for i in range(enc.layers):
        src, dst = f"{VISUAL}transformer.resblocks.{i}.", f"encoder.transformer.resblocks.{i}."
        for p in ("weight", "bias"):
            m[f"{src}attn.in_proj.{p}"] = (f"{dst}attn.in_proj_{p}", deinterleave)
            for name in ("ln_1", "ln_2", "attn.out_proj", "mlp.c_fc", "mlp.c_proj"):
                m[f"{src}{name}.{p}"] = (f"{dst}{name}.{p}", _same)
    for i in range(llm.layers):
        src, dst = f"transformer.h.{i}.", f"llm.model.layers.{i}."
        for p in ("weight", "bias"):
            m[f"{src}attn.c_attn.{p}"] = (tuple(f"{dst}self_attn.{x}_proj.{p}" for x in "qkv"), _split_qkv)
        for s, d in (
            ("ln_1", "input_layernorm"),
            ("ln_2", "post_attention_layernorm"),
            ("attn.c_proj", "self_attn.o_proj"),
            ("mlp.w2", "mlp.gate_proj"),  # QWen: c_proj(w1(x) * silu(w2(x)))
            ("mlp.w1", "mlp.up_proj"),
            ("mlp.c_proj", "mlp.down_proj"),
        ):
            m[f"{src}{s}.weight"] = (f"{dst}{d}.weight", _same)
    return m


# -- checks ------------------------------------------------------------------------------------
def meta_model(config: QwenVLConfig):
    """A QwenVLModel with every tensor on the meta device: shapes only, built in well under a second."""
    from qwenvl.models.qwen_vl import QwenVLModel  # qwen_vl imports this module lazily

    with torch.device("meta"):
        return QwenVLModel(config)


def expected_shapes(config: QwenVLConfig, key_map: KeyMap | None = None, model=None) -> dict[str, tuple]:
    """Released key -> the shape it must have for our model built from `config`."""
    key_map = key_map or released_key_map(config)
    own = {k: tuple(v.shape) for k, v in (model or meta_model(config)).state_dict().items()}
    mapped = set()
    out: dict[str, tuple] = {}
    for src, (dst, _) in key_map.items():
        if dst is None:
            out[src] = (config.adapter.num_queries, config.llm.hidden_size)
            continue
        dsts = dst if isinstance(dst, tuple) else (dst,)
        mapped.update(dsts)
        shapes = [own[d] for d in dsts]
        out[src] = (sum(s[0] for s in shapes), *shapes[0][1:]) if isinstance(dst, tuple) else shapes[0]
    if mapped != set(own):  # a model change the map does not know about
        raise RuntimeError(f"key map does not cover the model: unmapped {sorted(set(own) - mapped)[:10]}")
    return out


def _names(keys: Iterable[str], n: int = 10) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def check_shapes(found: dict[str, tuple], expected: dict[str, tuple], where: str) -> None:
    """Raise ValueError naming every missing, unexpected or wrongly shaped tensor."""
    found = {k: tuple(v) for k, v in found.items() if not k.endswith(IGNORED_SUFFIXES)}
    problems = []
    if missing := set(expected) - set(found):
        problems.append(f"missing tensors: {_names(missing)}")
    if unexpected := set(found) - set(expected):
        problems.append(f"unexpected tensors: {_names(unexpected)}")
    common = sorted(set(found) & set(expected))
    wrong = [f"{k} {found[k]} (expected {expected[k]})" for k in common if found[k] != expected[k]]
    if wrong:
        more = f" ... ({len(wrong)} in all)" if len(wrong) > 10 else ""
        problems.append("wrong shapes: " + "; ".join(wrong[:10]) + more)
    if problems:
        raise ValueError(f"{where}: not a Qwen-VL checkpoint of the configured size; " + " | ".join(problems))


def _sizes_from_shapes(shapes: dict[str, tuple]) -> dict[str, int]:
    """pos_grid and num_queries, which QWen fixes in code, read off the tensors (256 rows if absent)."""
    rows = {}
    for key in (VISUAL + "positional_embedding", POOL + "query"):
        rows[key] = shapes[key][0] if key in shapes else 256
        if math.isqrt(rows[key]) ** 2 != rows[key]:
            raise ValueError(f"{key} has {rows[key]} rows; expected a square grid")
    return {
        "pos_grid": math.isqrt(rows[VISUAL + "positional_embedding"]),
        "num_queries": rows[POOL + "query"],
    }


# -- conversion --------------------------------------------------------------------------------
def _convert_into(out: dict, state: dict[str, torch.Tensor], key_map: KeyMap, dtype) -> int:
    """Convert the tensors of `state` into `out` (our names); returns how many were read."""
    n = 0
    for key, t in state.items():
        if key.endswith(IGNORED_SUFFIXES):
            continue
        dst, transform = key_map[key]
        result = transform(t)
        n += 1
        if dst is None:
            continue
        pairs = zip(dst, result, strict=True) if isinstance(dst, tuple) else [(dst, result)]
        for d, r in pairs:
            # Own copy: drops ties to the shard (memory map, views of one storage, which safetensors
            # refuses to save) so the shard can be freed.
            out[d] = r.to(dtype=dtype if dtype is not None and r.is_floating_point() else r.dtype, copy=True)
    return n


def convert_state_dict(
    src_state: dict[str, torch.Tensor], qwen_config: dict, dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], QwenVLConfig]:
    """Released state dict + config.json dict -> (our state dict, QwenVLConfig). dtype None keeps dtypes."""
    shapes = {k: tuple(v.shape) for k, v in src_state.items()}
    config = released_config(qwen_config, **_sizes_from_shapes(shapes))
    key_map = released_key_map(config)
    check_shapes(shapes, expected_shapes(config, key_map), "state dict")
    out: dict[str, torch.Tensor] = {}
    _convert_into(out, src_state, key_map, dtype)
    return out, config


# -- files -------------------------------------------------------------------------------------
def weight_files(directory: str | Path) -> list[Path]:
    """The shards of a released directory, from its index JSON (safetensors first) or a single file."""
    directory = Path(directory)
    for name in INDEX_FILES:
        index = directory / name
        if not index.is_file():
            continue
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{index}: not a weight index (expected a 'weight_map' object): {e}") from e
        files = list(dict.fromkeys(weight_map.values()))
        # Shard names come from a data file: keep them inside the directory.
        bad = [f for f in files if not isinstance(f, str) or Path(f).name != f or f in (".", "..")]
        if bad:
            raise ValueError(f"{index}: shard names must be plain file names, got {bad[:5]}")
        absent = [f for f in files if not (directory / f).is_file()]
        if absent:
            raise FileNotFoundError(f"{index}: shards not found in {directory}: {absent[:5]}")
        return [directory / f for f in files]
    for name in SINGLE_FILES:
        if (directory / name).is_file():
            return [directory / name]
    raise FileNotFoundError(f"{directory}: no weights ({' / '.join(INDEX_FILES + SINGLE_FILES)})")


def _read_bin(path: Path, mmap: bool) -> dict[str, torch.Tensor]:
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # legacy, non-zip format
    except Exception as e:
        raise ValueError(
            f"{path}: could not be read as a weights-only torch file ({e}); files that need full "
            "unpickling are refused because unpickling runs code"
        ) from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a flat dict of tensors")
    return state


def read_shard(path: Path) -> dict[str, torch.Tensor]:
    """One shard's tensors; a .bin is memory-mapped so only the tensors being converted are in memory."""
    return load_file(str(path)) if path.suffix == ".safetensors" else _read_bin(path, mmap=True)


def shard_shapes(path: Path) -> dict[str, tuple]:
    """Tensor name -> shape without reading the data (safetensors header; memory-mapped .bin)."""
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    return {k: tuple(v.shape) for k, v in _read_bin(path, mmap=True).items()}


def read_qwen_config(directory: str | Path) -> dict:
    path = Path(directory, "config.json")
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{directory}: no config.json") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return d


def is_released_dir(path: str | Path) -> bool:
    """True for a directory in the released QWen layout (config.json with a `visual` section)."""
    try:
        d = read_qwen_config(path)
    except (FileNotFoundError, ValueError, OSError):
        return False
    return d.get("model_type") != "qwenvl" and isinstance(d.get("visual"), dict)


def _tokenizer(directory: Path, config: QwenVLConfig):
    """The directory's qwen.tiktoken, checked against the config's ids; None if absent."""
    path = directory / TOKENIZER_FILE
    if not path.is_file():
        return None
    tok = QwenTiktokenTokenizer.from_file(path)
    if tok.convert_tokens_to_ids(IMG_PAD) != config.image_pad_id or tok.vocab_size > config.vocab_size:
        raise ValueError(
            f"{path}: {tok.vocab_size} ids with <imgpad> = {tok.convert_tokens_to_ids(IMG_PAD)} do not fit "
            f"config.json (vocab_size {config.vocab_size}, <imgpad> = {config.image_pad_id})"
        )
    return tok


def _rebuild_buffers(model) -> None:
    """Recompute the non-persistent buffers a meta-device build leaves empty; fail on any meta leftover."""
    if isinstance(model.adapter, Resampler) and model.adapter.pos_embed is not None:
        c = model.adapter.config
        model.adapter.pos_embed = sincos_2d(c.width, model.adapter.grid, model.adapter.grid)
    rotary = model.llm.model.rotary_emb
    model.llm.model.rotary_emb = type(rotary)(config=rotary.config)  # recomputes inv_freq on the CPU
    left = [n for n, t in chain(model.named_parameters(), model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"tensors left on the meta device after loading: {left[:10]}")


def _load(directory: str | Path, dtype: torch.dtype | None):
    """-> (model, config, source tensors read, tokenizer or None); dtype None keeps the stored dtypes."""
    directory = Path(directory)
    qwen = read_qwen_config(directory)
    files = weight_files(directory)
    shapes: dict[str, tuple] = {}
    for f in files:
        for k, s in shard_shapes(f).items():
            if k in shapes:
                raise ValueError(f"{f}: tensor {k} also appears in another shard")
            shapes[k] = s
    config = released_config(qwen, **_sizes_from_shapes(shapes))
    tokenizer = _tokenizer(directory, config)  # fail before the long part
    model = meta_model(config)
    key_map = released_key_map(config)
    # Every check happens before any tensor is read, so a bad checkpoint fails in seconds.
    check_shapes(shapes, expected_shapes(config, key_map, model), str(directory))
    state: dict[str, torch.Tensor] = {}
    n = 0
    for f in files:  # one shard at a time: peak memory is the model plus one shard
        n += _convert_into(state, read_shard(f), key_map, dtype)
    model.load_state_dict(state, strict=True, assign=True)
    _rebuild_buffers(model)
    return model, config, n, tokenizer


def load_released(directory: str | Path, dtype: torch.dtype | None = None):
    """A QwenVLModel from a released directory. dtype None gives float32, like `from_pretrained`."""
    return _load(directory, dtype or torch.get_default_dtype())[0]


def convert_directory(src_dir: str | Path, out_dir: str | Path) -> ConversionReport:
    """Write a QwenVLModel directory (config.json, model.safetensors, tokenizer, processor config).

    Weights keep the checkpoint's dtype (bfloat16 for the release: about 19 GB).
    """
    from qwenvl.processor import QwenVLProcessor

    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if not src_dir.is_dir():
        raise FileNotFoundError(f"{src_dir}: no such directory")
    if out_dir.exists() and out_dir.resolve() == src_dir.resolve():
        raise ValueError(f"{out_dir}: the output directory must differ from the source")
    if not (src_dir / TOKENIZER_FILE).is_file():
        raise FileNotFoundError(f"{src_dir}: no {TOKENIZER_FILE}; the converted model needs its tokenizer")
    model, config, n, tokenizer = _load(src_dir, None)
    model.save_pretrained(out_dir)
    QwenVLProcessor(tokenizer, image_size=model.image_size, image_tokens=model.image_tokens).save_pretrained(
        out_dir
    )
    return ConversionReport(tensors=n, parameters=model.num_parameters(), config=config)
