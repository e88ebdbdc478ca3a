"""Load what an evaluation scores: a save_pretrained dir, a released Qwen-VL dir, or a training .ckpt."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import TOKENIZER_FILES, QwenVLTokenizer

log = logging.getLogger(__name__)


def load_for_eval(
    path: str | Path, tokenizer: str | Path | None = None
) -> tuple[QwenVLModel, QwenVLProcessor]:
    """(model in eval mode, processor). A .ckpt is read with weights_only=True; never unpickles code.

    A model directory's processor: the one saved beside it (processor_config.json); else one for
    `tokenizer`, a local tokenizer directory (`QwenVLModel.save_pretrained` writes the model
    alone); else the directory's own tokenizer file (a released Qwen-VL's qwen.tiktoken); else the
    built-in BPE. A .ckpt names its tokenizer in its own settings.
    """
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        model = QwenVLModel.from_pretrained(path)
        if (path / "processor_config.json").is_file():
            _ignored(tokenizer, path, "the processor saved there")
            return model.eval(), QwenVLProcessor.from_pretrained(path)
        own = any((path / f).is_file() for f in TOKENIZER_FILES)
        where = tokenizer or (path if own else None)
        tok = QwenVLTokenizer.from_pretrained(where) if where else None
        return model.eval(), QwenVLProcessor.from_model(model, tok)
    if path.is_file() and path.suffix == ".ckpt":
        from qwenvl.training.stages import module_class

        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        hp = dict(ckpt["hyper_parameters"])
        hp["stage"] = {**hp["stage"], "init_from": None}  # the weights come from this file
        module = module_class(hp["stage"])(**hp)
        # The model's weights, strictly; a stage's own head (`objects`) is not evaluated, so a head
        # of another shape (an older object-map set) does not stop its encoder being read.
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        module.model.load_state_dict(state)
        _ignored(tokenizer, path, "the tokenizer its run was configured with")
        return module.model.eval(), module.processor
    if not path.exists():
        raise FileNotFoundError(f"ckpt={path}: no such file or directory")
    raise FileNotFoundError(
        f"ckpt={path}: expected a save_pretrained / released Qwen-VL directory (with config.json) "
        "or a Lightning .ckpt file"
    )


def _ignored(tokenizer, path: Path, instead: str) -> None:
    if tokenizer:
        log.warning("tokenizer=%s is not used: ckpt=%s brings %s", tokenizer, path, instead)
