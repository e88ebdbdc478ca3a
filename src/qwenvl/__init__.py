"""qwenvl: train and evaluate Qwen-VL-style vision-language models with Lightning + Hydra.

from qwenvl import QwenVLModel, QwenVLProcessor
"""

from __future__ import annotations

import importlib

__all__ = ["QwenVLModel", "QwenVLProcessor", "QwenVLTokenizer"]
__version__ = "0.1.0"

# Imported on first use: torch and transformers take seconds to load, and tools such as
# qwenvl-leaderboard need neither.
_LAZY = {
    "QwenVLModel": "qwenvl.models.qwen_vl",
    "QwenVLProcessor": "qwenvl.processor",
    "QwenVLTokenizer": "qwenvl.tokenizer",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qwenvl' has no attribute {name!r}")
