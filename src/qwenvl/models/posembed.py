"""Fixed 2D sin-cos absolute position embeddings (MAE style), and their resizing to another grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """[N] positions -> [N, dim]: `dim/2` frequencies 1/10000^(i/(dim/2)), laid out as [sin | cos]."""
    if dim % 2:
        raise ValueError(f"1D sin-cos needs an even dim, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = pos.double().reshape(-1, 1) * omega  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """[grid_h * grid_w, dim] table in row-major order.

    The first half of the channels encodes the column index, the second half the row index: the
    layout of MAE's and Qwen-VL's `get_2d_sincos_pos_embed`, so converted weights line up.
    """
    if dim % 4:
        raise ValueError(f"2D sin-cos needs dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1)


def resize_grid(table: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """[src_h*src_w, D] -> [dst_h*dst_w, D] by bicubic interpolation in float32 (align_corners=False).

    Qwen-VL resizes both the encoder's learned table and the adapter's key table this way at every
    forward, so keep it bit-for-bit: float32, bicubic, no antialias.
    """
    if tuple(src) == tuple(dst):
        return table
    d = table.shape[-1]
    grid = table.float().reshape(1, src[0], src[1], d).permute(0, 3, 1, 2)  # (1, D, h, w)
    grid = F.interpolate(grid, size=tuple(dst), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(dst[0] * dst[1], d).to(table.dtype)
