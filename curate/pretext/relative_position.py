"""Relative patch position (Doersch, Gupta & Efros, 2015): show the model the centre patch of a 3x3 grid
and one of its 8 neighbours, and ask where the neighbour sits.

Teaches object parts and context: to tell "above-left" from "below-right" the model has to know what a
patch is (an ear, a wheel, a horizon) and how such parts are laid out. A random gap and jitter between
the patches make continuing edges or lines an unreliable shortcut. The first context-prediction
task and the cheapest one (two small patches per image); pick it as an auxiliary task next to a
contrastive one when layout matters, or Jigsaw for a harder variant of the same lesson.
Head: concatenated (centre, neighbour) features -> MLP -> 8-way classifier.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from curate.models.heads import mlp
from curate.pretext.base import TASKS, PretextTask
from curate.transforms.patches import GRID, crop_patches, grid_positions, tile_size, upsample_patches
from curate.transforms import ViewConfig, make_views, normalize
from curate.transforms.draws import randint

CENTRE = GRID * GRID // 2
NEIGHBOURS = [c for c in range(GRID * GRID) if c != CENTRE]  # label k -> grid cell, row-major
OFFSETS = [(c // GRID - 1, c % GRID - 1) for c in NEIGHBOURS]  # label k -> (rows, columns) from the centre


def pair_positions(labels: torch.Tensor, image_size: int, patch: int,
                   generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners (tops, lefts), each (B, 2) long, of [centre patch, neighbour patch].

    labels: (B,) in 0..7, the neighbour's position (`OFFSETS[label]` cells away from the centre).
    Each patch is jittered inside its cell of the 3x3 grid (see `jigsaw.grid_positions`).
    """
    tops, lefts = grid_positions(labels.shape[0], image_size, patch, generator, labels.device)
    cells = torch.tensor(NEIGHBOURS, device=labels.device)[labels]
    idx = torch.stack([torch.full_like(cells, CENTRE), cells], 1)
    return tops.gather(1, idx), lefts.gather(1, idx)


@TASKS.register("relative_position")
class RelativePosition(PretextTask):
    @dataclass
    class Config:
        patch_fraction: float = 0.75  # patch side / cell side; Doersch et al.: 96 px patches, 48 px gaps (0.67)
        hidden_dim: int = 512
        min_scale: float = 0.6

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.patch = tile_size(image_size, cfg.patch_fraction)
        self.head = mlp(2 * feature_dim, cfg.hidden_dim, len(NEIGHBOURS))
        # mild augmentation: both patches come from the same augmented image, so colour gives nothing away
        self.views = ViewConfig(size=image_size, scale=(cfg.min_scale, 1.0), jitter=0.5, grayscale=0.2)

    def build_views(self, images, generator=None):
        """[centre, neighbour], each (B, 3, p, p) with p = max(patch, MIN_BACKBONE_INPUT); target: the neighbour's position label (B,)."""
        x = normalize(make_views(images, self.views, generator))
        labels = randint(len(NEIGHBOURS), x.shape[0], generator, x.device)
        tops, lefts = pair_positions(labels, self.image_size, self.patch, generator)
        patches = upsample_patches(crop_patches(x, tops, lefts, self.patch))
        return [patches[:, 0], patches[:, 1]], labels

    def forward(self, backbone, views):
        feats = backbone(torch.cat(views).contiguous(memory_format=torch.channels_last))  # (2B, D), one pass
        centre, neighbour = feats.chunk(2)
        return self.head(torch.cat([centre, neighbour], 1))

    def loss(self, out, targets):
        logits = out.float()
        return {"loss": F.cross_entropy(logits, targets), "accuracy": (logits.argmax(1) == targets).float().mean()}
