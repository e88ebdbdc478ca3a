"""Build a QwenVLModel from the Hydra groups `encoder`, `adapter`, `llm` (and `tokenizer`)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.tokenizer import QwenVLTokenizer


def load_tokenizer(path: str | None) -> QwenVLTokenizer:
    """The `tokenizer` setting: null (the built-in BPE), `letters`, or a local directory."""
    return QwenVLTokenizer.load(path)


def build_model(cfg: DictConfig, tokenizer: QwenVLTokenizer | None = None) -> QwenVLModel:
    """cfg.encoder / cfg.adapter / cfg.llm instantiate to their config dataclasses, then compose."""
    tokenizer = tokenizer or load_tokenizer(cfg.get("tokenizer"))
    return QwenVLModel.from_config(
        encoder=instantiate(cfg.encoder),
        adapter=instantiate(cfg.adapter),
        llm=instantiate(cfg.llm),
        tokenizer=tokenizer,
    )
