"""Visual encoder: an open_clip Vision Transformer that returns per-patch features.

No class token and no pooling: the adapter needs every patch. The blocks are open_clip's own
`Transformer`, so open_clip checkpoints load key for key; patch embedding, the learned position
table and `ln_pre` are kept here because Qwen-VL drops the class token and resizes the table.

`stem="conv"` puts a small convolutional stem before the patch embedding ("early convolutions",
Xiao et al. 2021) for the tiny CPU default, which has no pretrained encoder to start from: a
linear map of 28-px patches sees a letter at each offset as a different pattern, while a 3x3
conv over 4-px cells sees its strokes (measured on the `objects` stage, docs/pipeline.md).
open_clip checkpoints have the plain patch stem.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, Transformer
from torch import nn

from qwenvl.models.posembed import resize_grid
from qwenvl.models.weights import load_state_dict


@dataclass
class EncoderConfig:
    """An open_clip ViT. Defaults are a small CPU-sized ViT; see conf/encoder/*.yaml for real sizes."""

    image_size: int = 224  # pixels, square; the patch grid is image_size // patch_size
    patch_size: int = 14
    width: int = 64
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0  # bigG: 8192 / 1664
    ln_eps: float = 1e-5  # open_clip uses 1e-5; the released Qwen-VL encoder 1e-6
    pos_grid: int | None = None  # side of the learned position table; None = the patch grid
    final_ln: bool = False  # a LayerNorm after the blocks (open_clip's ln_post); Qwen-VL has none
    stem: str = "patch"  # "patch": open_clip's one conv per patch; "conv": ConvStem first (see above)
    checkpoint: str | None = None  # local open_clip checkpoint (.safetensors / .pt / .bin)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.width % self.heads:
            raise ValueError(f"encoder width {self.width} is not divisible by heads {self.heads}")
        if self.stem not in ("patch", "conv"):
            raise ValueError(f"encoder.stem must be 'patch' or 'conv', got {self.stem!r}")
        if self.stem == "conv" and self.patch_size % ConvStem.stride:
            raise ValueError(
                f"encoder.stem=conv needs patch_size a multiple of {ConvStem.stride}, got {self.patch_size}"
            )
        if self.stem == "conv" and self.checkpoint:
            raise ValueError(
                f"encoder.checkpoint={self.checkpoint} is an open_clip ViT, whose patch embedding is one "
                "conv: set encoder.stem=patch to load it"
            )

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class ConvStem(nn.Module):
    """images [B, 3, H, W] -> [B, 32, H/4, W/4]: 4x4-px cells (16 channels), then a 3x3 conv over them.

    The patch embedding then reads `patch_size / 4` cells a side. 16 and 32 channels are the
    cheapest pair measured to read the synthetic world's letters (docs/pipeline.md); every layer is
    a conv, so it runs at any resolution.
    """

    stride = 4  # pixels per cell
    hidden = 16  # channels per cell after the first conv
    channels = 32  # output channels: the patch embedding's input

    def __init__(self):
        super().__init__()
        self.cells = nn.Conv2d(3, self.hidden, kernel_size=self.stride, stride=self.stride)
        self.mix = nn.Conv2d(self.hidden, self.channels, kernel_size=3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.mix(F.gelu(self.cells(images))))


class VisionEncoder(nn.Module):
    """images [B, 3, H, W] (CLIP-normalized) -> patch features [B, (H/p)*(W/p), width]."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c = config
        if c.stem == "conv":
            self.stem = ConvStem()
            kernel = c.patch_size // ConvStem.stride
            self.conv1 = nn.Conv2d(ConvStem.channels, c.width, kernel_size=kernel, stride=kernel, bias=False)
        else:
            self.stem = nn.Identity()  # no parameters: open_clip checkpoints load key for key
            self.conv1 = nn.Conv2d(3, c.width, kernel_size=c.patch_size, stride=c.patch_size, bias=False)
        side = c.pos_grid or c.grid
        self.positional_embedding = nn.Parameter(torch.randn(side * side, c.width) * c.width**-0.5)
        norm = partial(LayerNorm, eps=c.ln_eps)
        self.ln_pre = norm(c.width)
        self.transformer = Transformer(c.width, c.layers, c.heads, c.mlp_ratio, norm_layer=norm)
        self.ln_post = norm(c.width) if c.final_ln else nn.Identity()
        if c.checkpoint:
            self.load_open_clip(c.checkpoint)

    @property
    def width(self) -> int:
        return self.config.width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.stem(images))  # (B, width, gh, gw)
        grid = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)  # (B, gh*gw, width)
        side = int(math.isqrt(self.positional_embedding.shape[0]))
        x = x + resize_grid(self.positional_embedding, (side, side), tuple(grid)).to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x)

    def resize_pos_embed(self, image_size: int) -> None:
        """Re-grid the learned table for a new resolution (224 -> 448 between stages 1 and 2)."""
        side = int(math.isqrt(self.positional_embedding.shape[0]))
        new = image_size // self.config.patch_size
        table = resize_grid(self.positional_embedding.data, (side, side), (new, new))
        self.positional_embedding = nn.Parameter(table)
        self.config.image_size, self.config.pos_grid = image_size, None

    def load_open_clip(self, path: str | Path) -> None:
        """Load the `visual.*` weights of an open_clip CLIP checkpoint (or a bare visual state dict).

        The class-token row of open_clip's position table is dropped; the class embedding and the
        final projection are not used, since the adapter takes every patch.
        """
        state = load_state_dict(path)
        if any(k.startswith("visual.") for k in state):
            state = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
        pos = state.get("positional_embedding")
        if pos is not None and int(math.isqrt(pos.shape[0] - 1)) ** 2 == pos.shape[0] - 1:
            state["positional_embedding"] = pos[1:]  # drop the class-token position
        if not self.config.final_ln:
            state = {k: v for k, v in state.items() if not k.startswith("ln_post.")}
        ignored = {"class_embedding", "proj"}
        state = {k: v for k, v in state.items() if k not in ignored}
        own = self.state_dict()
        if (
            "positional_embedding" in state
            and state["positional_embedding"].shape != own["positional_embedding"].shape
        ):
            src = int(math.isqrt(state["positional_embedding"].shape[0]))
            dst = int(math.isqrt(own["positional_embedding"].shape[0]))
            state["positional_embedding"] = resize_grid(state["positional_embedding"], (src, src), (dst, dst))
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path}: open_clip checkpoint does not fit encoder {asdict(self.config)}; "
                f"missing {missing[:8]}, unexpected {unexpected[:8]}"
            )
