"""Load what an evaluation scores: a save_pretrained dir, a released Qwen-VL dir, or a training .ckpt."""

from __future__ import annotations

from pathlib import Path

import torch

from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import QwenVLTokenizer


def load_for_eval(
    path: str | Path, tokenizer: str | Path | None = None
) -> tuple[QwenVLModel, QwenVLProcessor]:
    """(model in eval mode, processor). A .ckpt is read with weights_only=True; never unpickles code.

    `tokenizer`: a local tokenizer directory for a model directory that holds no processor
    (`QwenVLModel.save_pretrained` writes the model alone); None there means the built-in BPE. A
    processor saved beside the model, and a .ckpt's own tokenizer setting, come first.
    """
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        model = QwenVLModel.from_pretrained(path)
        if (path / "processor_config.json").is_file():
            return model.eval(), QwenVLProcessor.from_pretrained(path)
        tok = QwenVLTokenizer.from_pretrained(tokenizer) if tokenizer else None
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
        return module.model.eval(), module.processor
    if not path.exists():
        raise FileNotFoundError(f"ckpt={path}: no such file or directory")
    raise FileNotFoundError(
        f"ckpt={path}: expected a save_pretrained / released Qwen-VL directory (with config.json) "
        "or a Lightning .ckpt file"
    )
