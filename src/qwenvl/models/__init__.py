"""Model parts, one file each: encoder, adapter, posembed, llm, and their composition."""

from qwenvl.models.adapter import MLPConfig, MLPProjector, Resampler, ResamplerConfig
from qwenvl.models.config import QwenVLConfig
from qwenvl.models.encoder import EncoderConfig, VisionEncoder
from qwenvl.models.llm import LLMConfig
from qwenvl.models.qwen_vl import QwenVLModel

__all__ = [
    "EncoderConfig", "LLMConfig", "MLPConfig", "MLPProjector", "QwenVLConfig", "QwenVLModel",
    "Resampler", "ResamplerConfig", "VisionEncoder",
]  # fmt: skip
