"""The language model: transformers' Qwen2ForCausalLM, built from a config or a local checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


@dataclass
class LLMConfig:
    """Qwen2-architecture decoder. Defaults are `tiny`; see conf/llm/*.yaml for real sizes."""

    vocab_size: int | None = None  # None = the tokenizer's size rounded up to a multiple of 64
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 4  # == heads is plain multi-head attention (Qwen-7B); fewer is GQA (Qwen2)
    intermediate_size: int = 344
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 8192
    tie_word_embeddings: bool = False  # Qwen-7B: untied
    attn_implementation: str = "sdpa"  # "eager" for debugging, "flash_attention_2" where installed
    pretrained: str | None = None  # a local HF checkpoint directory; nothing is fetched

    def to_hf(self, vocab_size: int) -> Qwen2Config:
        return Qwen2Config(
            vocab_size=vocab_size,
            **{theirs: getattr(self, ours) for ours, theirs in HF_FIELDS.items()},
            rope_parameters={"rope_type": "default", "rope_theta": self.rope_theta},
            use_sliding_window=False,
        )

    @classmethod
    def from_hf(cls, hf: Qwen2Config, vocab_size: int, **keep) -> LLMConfig:
        """The config `to_hf` turns into `hf` (the inverse mapping): the shape of a loaded checkpoint.
        `keep`: fields with no Qwen2Config counterpart (`attn_implementation`)."""
        params = getattr(hf, "rope_parameters", None) or {}  # transformers 5.x keeps the base here
        return cls(
            vocab_size=vocab_size,
            **{ours: getattr(hf, theirs) for ours, theirs in HF_FIELDS.items()},
            rope_theta=float(params.get("rope_theta", getattr(hf, "rope_theta", 10000.0))),
            **keep,
        )


# LLMConfig field -> Qwen2Config field, both ways (the RoPE base is nested in rope_parameters)
HF_FIELDS = {
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "layers": "num_hidden_layers",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "rms_norm_eps": "rms_norm_eps",
    "max_position_embeddings": "max_position_embeddings",
    "tie_word_embeddings": "tie_word_embeddings",
}


def pretrained_dir(config: LLMConfig) -> Path:
    """`config.pretrained` as a directory holding a config.json; FileNotFoundError saying so if not."""
    path = Path(config.pretrained)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"llm.pretrained={path}: no config.json there (a local HF checkpoint dir)")
    return path


def pretrained_shape(config: LLMConfig, vocab_size: int) -> LLMConfig:
    """The shape of `config.pretrained`'s checkpoint from its config.json, no weights read, with at
    least `vocab_size` rows (a loaded checkpoint's embeddings grow to that)."""
    hf = Qwen2Config.from_pretrained(pretrained_dir(config), local_files_only=True)
    rows = max(hf.vocab_size, vocab_size)
    return LLMConfig.from_hf(hf, vocab_size=rows, attn_implementation=config.attn_implementation)


def build_llm(config: LLMConfig, vocab_size: int) -> Qwen2ForCausalLM:
    """A Qwen2ForCausalLM with `vocab_size` rows, random or from `config.pretrained` (local only).
    On the meta device a pretrained LLM is built from its checkpoint's shape alone: nothing is read
    (how the ranks of an FSDP run that are not rank 0 build under `parallel.rank0_init`)."""
    if config.pretrained and torch.empty(0).is_meta:
        shape = pretrained_shape(config, vocab_size)
        return build_llm(shape, shape.vocab_size)
    if config.pretrained:
        path = pretrained_dir(config)
        model = Qwen2ForCausalLM.from_pretrained(
            path, local_files_only=True, attn_implementation=config.attn_implementation, use_safetensors=None
        )
        if model.get_input_embeddings().num_embeddings < vocab_size:
            model.resize_token_embeddings(vocab_size)
        return model
    hf = config.to_hf(vocab_size)
    hf._attn_implementation = config.attn_implementation
    return Qwen2ForCausalLM(hf)
