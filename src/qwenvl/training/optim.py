"""AdamW with decoupled weight decay and a cosine schedule with linear warmup."""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters that must not decay: norms and biases (1-D), embeddings, learned queries and position
# tables (decay would pull them toward zero with no regularizing benefit).
NO_DECAY_NAMES = ("embed_tokens", "query", "positional_embedding", "pos_embed")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over trainable parameters only: frozen ones get no optimizer state."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or any(key in name for key in NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def cosine_with_warmup(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear 0->1 over `warmup` steps, then cosine 1->min_ratio at `total`."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas, warmup: int, total: int, min_ratio: float
):
    groups = param_groups(model, weight_decay)
    if not any(g["params"] for g in groups):
        raise ValueError("no trainable parameters: check stage.trainable")
    opt = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, warmup, total, min_ratio))
    return opt, sched
