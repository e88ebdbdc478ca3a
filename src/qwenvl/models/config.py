"""QwenVLConfig: the three parts' configs plus the token ids that tie them together.

Serialized as JSON with each part's fields and the adapter's registry name. Loading goes through a
fixed registry of config classes, never through an import path found in the file, so a
config.json cannot make qwenvl run arbitrary code.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qwenvl.models.adapter import ADAPTERS, MLPConfig, ResamplerConfig, adapter_type
from qwenvl.models.encoder import EncoderConfig
from qwenvl.models.llm import LLMConfig


def _build(cls, values: dict, where: str):
    """cls(**values), with a message naming the unknown keys and the valid ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; valid keys are {sorted(names)}")
    return cls(**values)


@dataclass
class QwenVLConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: ResamplerConfig | MLPConfig = field(default_factory=ResamplerConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    vocab_size: int = 4096  # rows of the LLM embedding (>= the tokenizer's size)
    image_pad_id: int = 11  # the <imgpad> id whose embeddings the adapter output replaces
    pad_token_id: int = 0
    eos_token_ids: list[int] = field(default_factory=lambda: [2, 0])

    def to_dict(self) -> dict:
        return {
            "model_type": "qwenvl",
            "encoder": asdict(self.encoder),
            "adapter": {"type": adapter_type(self.adapter), **asdict(self.adapter)},
            "llm": asdict(self.llm),
            "vocab_size": self.vocab_size,
            "image_pad_id": self.image_pad_id,
            "pad_token_id": self.pad_token_id,
            "eos_token_ids": list(self.eos_token_ids),
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> QwenVLConfig:
        d = dict(d)
        if d.pop("model_type", "qwenvl") != "qwenvl":
            raise ValueError(f"{where}: not a qwenvl config (model_type={d.get('model_type')!r})")
        adapter = dict(d.pop("adapter", {}))
        kind = adapter.pop("type", "resampler")
        if kind not in ADAPTERS:
            raise ValueError(f"{where}: unknown adapter type {kind!r}; known: {sorted(ADAPTERS)}")
        parts = {
            "encoder": _build(EncoderConfig, d.pop("encoder", {}), f"{where}: encoder"),
            "adapter": _build(ADAPTERS[kind][0], adapter, f"{where}: adapter"),
            "llm": _build(LLMConfig, d.pop("llm", {}), f"{where}: llm"),
        }
        return _build(cls, {**d, **parts}, where)

    def save(self, directory: str | Path) -> None:
        Path(directory, "config.json").write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, directory: str | Path) -> QwenVLConfig:
        path = Path(directory, "config.json")
        try:
            return cls.from_dict(json.loads(path.read_text()), where=str(path))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
