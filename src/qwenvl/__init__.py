"""qwenvl: train and evaluate Qwen-VL-style vision-language models with Lightning + Hydra.

from qwenvl import QwenVLModel, QwenVLProcessor
"""

from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import QwenVLTokenizer

__all__ = ["QwenVLModel", "QwenVLProcessor", "QwenVLTokenizer"]
__version__ = "0.1.0"
