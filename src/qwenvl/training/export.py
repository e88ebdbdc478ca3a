"""The full model of a sharded (FSDP2) run, written once as a save_pretrained directory.

An FSDP run's `last.ckpt` is a directory of per-rank shards whose index (`.metadata`) only pickle
can read, so neither `stage.init_from` nor `qwenvl-eval` reads it (they never unpickle). At the end
of such a run every rank hands its shards to one full state dict on rank 0's CPU
(`get_model_state_dict(full_state_dict=True, cpu_offload=True)`: one part's gathered tensors at a
time on the GPU), and rank 0 writes `config.json`, `model.safetensors` and the processor beside
the checkpoint: `checkpoints/last.model/`, what the next stage starts from and the evaluation
scores. `last.ckpt/` stays what `ckpt_path=last` resumes.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch

from qwenvl.models.qwen_vl import QwenVLModel

log = logging.getLogger(__name__)
EXPORT_NAME = "last.model"  # beside last.ckpt in the run's checkpoints/


def export_full_model(module, trainer, directory: str | Path) -> Path:
    """Gather `module.model`'s full weights (a collective: every rank calls it) and write them on
    global rank 0 as a save_pretrained directory, atomically (a temporary directory renamed over
    the old one). Returns the directory."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    directory = Path(directory)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(module.model, options=options)  # full on rank 0, empty elsewhere
    if trainer.is_global_zero:
        model = _model_from(module.model, state)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        module.processor.save_pretrained(tmp)
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)  # left by a run that died between the two renames
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
        log.info("full model of the sharded run written to %s", directory)
    trainer.strategy.barrier("export_full_model")  # no rank reads it before it is there
    return directory


def _model_from(sharded: QwenVLModel, state: dict[str, torch.Tensor]) -> QwenVLModel:
    """An unsharded QwenVLModel holding `state`, built on the meta device (no second, random copy of
    the weights in memory) and given the gathered tensors themselves."""
    with torch.device("meta"):
        model = QwenVLModel(sharded.standalone_config())
    model.load_state_dict(state, strict=True, assign=True)
    if model.config.llm.tie_word_embeddings:
        model.llm.tie_weights()  # assign replaced the shared Parameter with two
    return model  # its non-persistent buffers stay meta: it is only saved, never run
