"""AdamW with decoupled weight decay and a cosine schedule with linear warmup."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from qwenvl.training.stages import PARTS

# Parameters that must not decay: norms and biases (1-D), embeddings, learned queries and position
# tables (decay would pull them toward zero with no regularizing benefit).
NO_DECAY_NAMES = ("embed_tokens", "query", "positional_embedding", "pos_embed")


def part_of(name: str) -> str | None:
    """The model part ("encoder", "adapter", "llm") a parameter name belongs to, or None (a stage's head)."""
    return next((c for c in name.split(".") if c in PARTS), None)


def param_groups(
    model: nn.Module, weight_decay: float, lr: float, lr_scale: Mapping[str, float] | None = None
) -> list[dict]:
    """AdamW groups over trainable parameters only: frozen ones get no optimizer state.

    Two groups (decay, no decay) per learning rate: `lr_scale` multiplies `lr` per part, e.g.
    {"encoder": 0.1} (StageConfig checks the part names). The unscaled groups come first, so group 0
    carries the stage's own rate, the one that is logged.
    """
    scales = dict(lr_scale or {})
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decays = not (p.ndim < 2 or any(key in name for key in NO_DECAY_NAMES))
        groups.setdefault((scales.get(part_of(name), 1.0), decays), []).append(p)
    out = []
    for scale in sorted({s for s, _ in groups}, key=lambda s: (s != 1.0, s)):
        for decays in (True, False):
            group = {
                "params": groups.get((scale, decays), []),
                "weight_decay": weight_decay if decays else 0.0,
            }
            if scale != 1.0:  # AdamW's own lr (the stage's) serves the unscaled groups
                group["lr"] = lr * scale
            out.append(group)
    return out


def cosine_with_warmup(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear 0->1 over `warmup` steps, then cosine 1->min_ratio at `total`."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas,
    warmup: int,
    total: int,
    min_ratio: float,
    lr_scale: Mapping[str, float] | None = None,
):
    groups = param_groups(model, weight_decay, lr, lr_scale)
    if not any(g["params"] for g in groups):
        raise ValueError("no trainable parameters: check stage.trainable")
    opt = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, warmup, total, min_ratio))
    return opt, sched
