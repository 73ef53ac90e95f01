"""Tiles of a 3x3 grid cut from a batch of images in one gather: shared by the jigsaw and relative
position tasks (and usable by any patch-based task)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from curate.transforms.draws import randint

GRID = 3
# Smallest side at which a patch is fed to the backbone. A ResNet with the small_pool stem halves a
# 32 px image's 8 px tiles to a 1x1 map before its last stage, and torch's CPU bf16 convolution
# backward returns garbage weight gradients (inf, 1e29) for a stride-2 3x3 conv on a 1x1 map
# (measured with torch 2.14): it silently ruined jigsaw encoders. At 16 px the deepest map is 2x2.
MIN_BACKBONE_INPUT = 16


def tile_size(image_size: int, fraction: float) -> int:
    """Side of a tile: `fraction` of a grid cell (image_size // 3), at least 1 pixel."""
    return max(1, int(image_size // GRID * fraction))


def grid_positions(batch: int, image_size: int, tile: int, generator=None,
                   device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners (tops, lefts), each (B, 9) long, of one tile per cell of a centred 3x3 grid.

    Cells are image_size // 3 pixels, in row-major order; each tile (tile <= cell) sits at a uniform
    random integer offset in [0, cell - tile] inside its cell, drawn per sample and per cell, so
    neighbouring tiles are separated by a random gap of 0 .. 2 * (cell - tile) pixels.
    """
    cell = image_size // GRID
    if not 1 <= tile <= cell:
        raise ValueError(f"tile must be in 1..{cell} for {image_size}-pixel images, not {tile}")
    origin = (image_size - GRID * cell) // 2
    k = torch.arange(GRID * GRID, device=device)
    jitter = randint(cell - tile + 1, (2, batch, GRID * GRID), generator, device, batch_dim=1)
    return origin + (k // GRID) * cell + jitter[0], origin + (k % GRID) * cell + jitter[1]


def crop_patches(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) images, (B, K) corners -> (B, K, C, size, size) square patches (one gather)."""
    r = torch.arange(size, device=x.device)
    rows = (tops.unsqueeze(-1) + r).unsqueeze(-1)  # (B, K, size, 1)
    cols = (lefts.unsqueeze(-1) + r).unsqueeze(-2)  # (B, K, 1, size)
    b = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1, 1)
    return x.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 1, 4, 2, 3)  # gather as (B, K, s, s, C)


def upsample_patches(patches: torch.Tensor, side: int = MIN_BACKBONE_INPUT) -> torch.Tensor:
    """(B, K, C, s, s) -> (B, K, C, side, side), bilinear, when s < side; larger patches are returned as is."""
    b, k, c, s, _ = patches.shape
    if s >= side:
        return patches
    up = F.interpolate(patches.reshape(b * k, c, s, s), size=(side, side), mode="bilinear", align_corners=False)
    return up.reshape(b, k, c, side, side)
