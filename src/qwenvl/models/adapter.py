"""Vision-language adapters: patch features [B, P, D_enc] -> LLM input embeddings [B, Q, D_llm].

`Resampler` is Qwen-VL's position-aware adapter: one cross-attention layer in which Q learnable
queries attend to all patches, compressing any number of patches to Q tokens. `MLPProjector` is
the LLaVA-style baseline (no compression, Q = P) that ablations compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from qwenvl.models.posembed import resize_grid, sincos_2d


@dataclass
class ResamplerConfig:
    """Position-aware cross-attention adapter. `kv_width`/`width` are filled in from encoder and LLM."""

    num_queries: int = 256  # a square number: the queries form a sqrt(Q) x sqrt(Q) grid
    heads: int | None = None  # None = width // 128 as Qwen-VL (32 at 4096), at least 4 (see Resampler)
    pos_embed: Literal["sincos2d", "none"] = "sincos2d"
    # Also add each query's position to its output: Qwen-VL's values carry none, so the LLM must
    # learn where a token is from what it shows (see Resampler). Not Qwen-VL; off by default.
    pos_out: bool = False
    # Values carry the key positions too (kv + pos_k), so a query's output says where the patches
    # it attended to lie: what an OpenCLIP ViT's features give Qwen-VL's values and a small
    # encoder trained on place-free targets loses (docs/pipeline.md). Not Qwen-VL; off by default.
    pos_values: bool = False
    # Adds -local_bias x (distance from the query's place, in query cells)^2 to every attention
    # logit, so that a query reads mostly the patches under it and its token shows one part of the
    # picture: what the tiny default's adapter never learns (its queries gather from the whole
    # picture; docs/pipeline.md). 0 = Qwen-VL's attention; 4 keeps a 224-px query on its own patch.
    local_bias: float = 0.0
    ln_eps: float = 1e-6
    kv_width: int | None = None  # encoder width
    width: int | None = None  # LLM hidden size

    def __post_init__(self) -> None:
        if math.isqrt(self.num_queries) ** 2 != self.num_queries:
            raise ValueError(
                f"adapter.num_queries must be a square number (a query grid), got {self.num_queries}"
            )
        if self.pos_embed not in ("sincos2d", "none"):
            raise ValueError(f"adapter.pos_embed must be 'sincos2d' or 'none', got {self.pos_embed!r}")
        if not self.local_bias >= 0:
            raise ValueError(f"adapter.local_bias must be >= 0 (0 = off), got {self.local_bias}")
        for name in ("pos_out", "pos_values"):
            if getattr(self, name) and self.pos_embed == "none":
                raise ValueError(
                    f"adapter.{name} adds the sin-cos positions: it needs adapter.pos_embed=sincos2d"
                )


@dataclass
class MLPConfig:
    """LLaVA-style two-layer projector; one output token per patch."""

    hidden: int | None = None  # None = the LLM width
    kv_width: int | None = None
    width: int | None = None


def grid_places(tokens: int) -> torch.Tensor:
    """(row, column) [tokens, 2] of a square row-major grid of `tokens` cells."""
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"{tokens} tokens do not form a square grid")
    index = torch.arange(tokens)
    return torch.stack([index // side, index % side], -1).float()


def cell_centres(side: int) -> torch.Tensor:
    """(row, column) centres [side * side, 2] of a square row-major grid's cells, in picture sides."""
    return (grid_places(side * side) + 0.5) / side


class Resampler(nn.Module):
    """x [B, P, kv_width] -> [B, Q, width].

    kv = ln_kv(kv_proj(x)); out = attn(ln_q(query) + pos_q, kv + pos_k, kv); ln_post; @ proj.
    pos_q is a fixed 2D sin-cos table on the query grid; pos_k is that table bicubically resized to
    the patch grid (Qwen-VL's `get_abs_pos`), so a query and the patches under it share a position
    code at any resolution. Values carry no position term: a token says where it is only through
    what the encoder's features keep of their positions. With `pos_out`, out + pos_q goes to
    ln_post, so every token carries its query's place (measured on the tiny default: grounding
    learned from the stage-2 checkpoint only with it; docs/pipeline.md). With `pos_values`, the
    values are kv + pos_k, so a token carries the place of what it attended to, wherever that is.
    With `local_bias`, each logit is lowered by the squared distance between the query's cell and
    the patch, so a token shows the part of the picture under its query.
    """

    def __init__(self, config: ResamplerConfig):
        super().__init__()
        c = config
        if c.kv_width is None or c.width is None:
            raise ValueError("ResamplerConfig needs kv_width (encoder width) and width (LLM hidden size)")
        # At least 4 heads: with a single head a small adapter learns to read images far more slowly
        # (measured on the synthetic world: one head had not started after 600 steps, four had).
        heads = c.heads or max(4, c.width // 128)
        if c.width % heads:
            raise ValueError(f"adapter width {c.width} is not divisible by {heads} heads")
        self.config, self.grid = c, math.isqrt(c.num_queries)
        self.query = nn.Parameter(torch.empty(c.num_queries, c.width))
        nn.init.trunc_normal_(self.query, std=0.02)
        table = sincos_2d(c.width, self.grid, self.grid) if c.pos_embed == "sincos2d" else None
        self.register_buffer("pos_embed", table, persistent=False)  # fixed: rebuilt, never learned
        self.kv_proj = nn.Linear(c.kv_width, c.width, bias=False) if c.kv_width != c.width else nn.Identity()
        self.attn = nn.MultiheadAttention(c.width, heads, batch_first=True)
        self.ln_q = nn.LayerNorm(c.width, eps=c.ln_eps)
        self.ln_kv = nn.LayerNorm(c.width, eps=c.ln_eps)
        self.ln_post = nn.LayerNorm(c.width, eps=c.ln_eps)
        self.proj = nn.Parameter(c.width**-0.5 * torch.randn(c.width, c.width))
        # (patches, device, dtype) -> the local_bias term: built once per patch grid, not every step
        self._locality: dict[tuple, torch.Tensor] = {}

    def num_tokens(self, num_patches: int) -> int:
        return self.config.num_queries

    def _attention_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries [B, Q, W], keys and values [B, P, W] of the cross-attention for patches x."""
        kv = self.ln_kv(self.kv_proj(x))  # (B, P, W)
        q = self.ln_q(self.query).unsqueeze(0).expand(x.shape[0], -1, -1)  # (B, Q, W)
        keys = kv
        if self.pos_embed is not None:
            side = math.isqrt(x.shape[1])
            if side * side != x.shape[1]:
                raise ValueError(f"resampler expects a square patch grid, got {x.shape[1]} patches")
            q = q + self.pos_embed.to(q.dtype)
            keys = kv + resize_grid(self.pos_embed, (self.grid, self.grid), (side, side)).to(kv.dtype)
        return q, keys, keys if self.config.pos_values else kv

    def locality(self, patches: int, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """The `local_bias` term [Q, P] added to the attention logits, or None when it is off."""
        if not self.config.local_bias:
            return None
        key = (patches, self.query.device, dtype)
        if key not in self._locality:
            side = math.isqrt(patches)
            if side * side != patches:
                raise ValueError(f"adapter.local_bias needs a square patch grid, got {patches} patches")
            cells = torch.cdist(cell_centres(self.grid), cell_centres(side)) * self.grid  # in query cells
            self._locality[key] = (-self.config.local_bias * cells.square()).to(self.query.device, dtype)
        return self._locality[key]

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Each head's attention of each query over the patches, [B, heads, Q, P] (rows sum to 1)."""
        q, k, v = self._attention_inputs(x)
        mask = self.locality(x.shape[1], q.dtype)
        _, weights = self.attn(q, k, v, need_weights=True, average_attn_weights=False, attn_mask=mask)
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._attention_inputs(x)
        out, _ = self.attn(q, k, v, need_weights=False, attn_mask=self.locality(x.shape[1], q.dtype))
        if self.config.pos_out:
            out = out + self.pos_embed.to(out.dtype)
        return self.ln_post(out) @ self.proj


class MLPProjector(nn.Module):
    """x [B, P, kv_width] -> [B, P, width] through Linear-GELU-Linear."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        if config.kv_width is None or config.width is None:
            raise ValueError("MLPConfig needs kv_width (encoder width) and width (LLM hidden size)")
        hidden = config.hidden or config.width
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.kv_width, hidden), nn.GELU(), nn.Linear(hidden, config.width)
        )

    def num_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


ADAPTERS = {"resampler": (ResamplerConfig, Resampler), "mlp": (MLPConfig, MLPProjector)}


def adapter_type(config) -> str:
    """The registry name of an adapter config instance."""
    for name, (cfg_cls, _) in ADAPTERS.items():
        if isinstance(config, cfg_cls):
            return name
    raise TypeError(f"unknown adapter config {type(config).__name__}; known: {sorted(ADAPTERS)}")


def build_adapter(config) -> nn.Module:
    return ADAPTERS[adapter_type(config)][1](config)
