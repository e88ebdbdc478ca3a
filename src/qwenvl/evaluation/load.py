"""Load what an evaluation scores: a save_pretrained dir, a released Qwen-VL dir, or a training .ckpt."""

from __future__ import annotations

import logging
from pathlib import Path

from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.processor import QwenVLProcessor
from qwenvl.tokenizer import TOKENIZER_FILES, QwenVLTokenizer

log = logging.getLogger(__name__)

# What the errors below end with: the inputs `ckpt=` takes.
TAKES = (
    "pass a save_pretrained or released Qwen-VL directory (with config.json), an FSDP run's "
    "checkpoints/last.model, or a Lightning .ckpt file"
)


def load_for_eval(
    path: str | Path, tokenizer: str | Path | None = None
) -> tuple[QwenVLModel, QwenVLProcessor]:
    """(model in eval mode, processor). A checkpoint file is read with weights_only=True; nothing
    is unpickled. Errors name the path, what it is, and what to pass instead.

    A model directory's processor: the one saved beside it (processor_config.json); else one for
    `tokenizer`, a local tokenizer directory (`QwenVLModel.save_pretrained` writes the model
    alone); else the directory's own tokenizer file (a released Qwen-VL's qwen.tiktoken); else the
    built-in BPE. A training checkpoint names its tokenizer in its own settings.
    """
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        return _from_model_dir(path, tokenizer)
    if path.is_file():  # last.ckpt, or the `.consolidated` file of an FSDP run's shards
        return _from_training_checkpoint(path, tokenizer)
    if not path.exists():
        raise FileNotFoundError(f"ckpt={path}: no such file or directory; {TAKES}")
    from qwenvl.training.init_from import ckpts_inside, refuse_sharded

    refuse_sharded(path, "ckpt")
    raise FileNotFoundError(f"ckpt={path}: a directory without config.json{ckpts_inside(path)}; {TAKES}")


def _from_model_dir(path: Path, tokenizer) -> tuple[QwenVLModel, QwenVLProcessor]:
    model = QwenVLModel.from_pretrained(path)
    if (path / "processor_config.json").is_file():
        _ignored(tokenizer, path, "the processor saved there")
        return model.eval(), QwenVLProcessor.from_pretrained(path)
    own = any((path / f).is_file() for f in TOKENIZER_FILES)
    where = tokenizer or (path if own else None)
    tok = QwenVLTokenizer.load(where) if where else None  # a directory, or a built-in name
    return model.eval(), QwenVLProcessor.from_model(model, tok)


def _from_training_checkpoint(path: Path, tokenizer) -> tuple[QwenVLModel, QwenVLProcessor]:
    from qwenvl.training.init_from import load_checkpoint
    from qwenvl.training.stages import module_class

    ckpt = load_checkpoint(path, "ckpt", TAKES)
    if not isinstance(ckpt, dict) or not {"hyper_parameters", "state_dict"} <= ckpt.keys():
        raise ValueError(
            f"ckpt={path}: not a training checkpoint (no hyper_parameters and state_dict to build the "
            f"model from); {TAKES}"
        )
    hp = dict(ckpt["hyper_parameters"])
    hp["stage"] = {**hp["stage"], "init_from": None}  # the weights come from this file
    module = module_class(hp["stage"])(**hp)
    # The model's weights, strictly; a stage's own head (`objects`) is not evaluated, so a head
    # of another shape (an older object-map set) does not stop its encoder being read.
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    module.model.load_state_dict(state)
    _ignored(tokenizer, path, "the tokenizer its run was configured with")
    return module.model.eval(), module.processor


def _ignored(tokenizer, path: Path, instead: str) -> None:
    if tokenizer:
        log.warning("tokenizer=%s is not used: ckpt=%s brings %s", tokenizer, path, instead)
