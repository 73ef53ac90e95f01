"""Jigsaw puzzles (Noroozi & Favaro, 2016): cut an image into a 3x3 grid of tiles, shuffle them, and
classify which of a fixed set of permutations was applied.

Teaches object parts and their spatial arrangement (a head goes above a body, a wheel below a car
door) from tiles seen one at a time: each tile is embedded alone by the shared backbone, and only
the head sees all nine. Tiles are cut with a random gap and jitter inside their cells so that
continuing edges or lines across tiles is no reliable shortcut. Pick it as an auxiliary task when
layout matters (objects, scenes, documents); it adds no invariance to colour or crops, so pair it
with a contrastive task for retrieval. Head: concatenated 9 tile features -> MLP -> P-way classifier.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from curate.models.heads import mlp
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import ViewConfig, make_views, normalize
from curate.transforms.draws import randint
from curate.transforms.patches import GRID, crop_patches, grid_positions, tile_size, upsample_patches


@functools.lru_cache(maxsize=8)
def _permutation_set(n: int, seed: int) -> np.ndarray:
    perms = np.array(list(itertools.permutations(range(GRID * GRID))), dtype=np.int8)  # (9!, 9)
    columns = np.ascontiguousarray(perms.T)  # (9, 9!): comparing row-wise is ~30x faster than per permutation

    def hamming_to(p: np.ndarray) -> np.ndarray:
        return GRID * GRID - (columns == p[:, None]).sum(0, dtype=np.int8)

    chosen = [int(np.random.default_rng(seed).integers(len(perms)))]
    min_dist = hamming_to(perms[chosen[0]])  # distance of every permutation to the chosen set
    for _ in range(n - 1):
        j = int(np.argmax(min_dist))  # first of the farthest: deterministic tie-break
        chosen.append(j)
        np.minimum(min_dist, hamming_to(perms[j]), out=min_dist)
    return perms[chosen]


def permutation_set(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 9) long: n distinct permutations of the 9 tiles, spread apart in Hamming distance.

    Greedy max-min selection over all 9! permutations from a seeded random start (Noroozi & Favaro's
    maximal-Hamming-distance set, with the minimum instead of the average distance): each new
    permutation is the one farthest from all chosen so far. A pure function of (n, seed).
    """
    if not 1 <= n <= 1000:
        raise ValueError(f"number of permutations must be in 1..1000, not {n}")
    return torch.from_numpy(_permutation_set(n, seed).astype(np.int64))


@TASKS.register("jigsaw")
class Jigsaw(PretextTask):
    @dataclass
    class Config:
        num_permutations: int = 100
        permutation_seed: int = 0
        tile_fraction: float = 0.85  # tile side / cell side: Noroozi & Favaro's 64 px tiles in 75 px cells
        hidden_dim: int = 512
        min_scale: float = 0.6

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        # derived from the config, so not saved in checkpoints
        perms = permutation_set(cfg.num_permutations, cfg.permutation_seed)
        self.register_buffer("permutations", perms, persistent=False)
        self.tile = tile_size(image_size, cfg.tile_fraction)
        self.head = mlp(GRID * GRID * feature_dim, cfg.hidden_dim, cfg.num_permutations)
        # mild augmentation: the puzzle, not the crop, is the lesson; strong crops would leave tiles of blur
        self.views = ViewConfig(size=image_size, scale=(cfg.min_scale, 1.0), jitter=0.5, grayscale=0.2)

    def build_views(self, images, generator=None):
        """9 views, each (B, 3, t, t) with t = max(tile, MIN_BACKBONE_INPUT): views[i] is the tile of grid cell permutations[label][i]."""
        b, device = images.shape[0], images.device
        x = normalize(make_views(images, self.views, generator))
        tops, lefts = grid_positions(b, self.image_size, self.tile, generator, device)
        label = randint(len(self.permutations), b, generator, device)
        order = self.permutations.to(device)[label]  # (B, 9)
        tiles = upsample_patches(crop_patches(x, tops.gather(1, order), lefts.gather(1, order), self.tile))
        return list(tiles.unbind(1)), label

    def forward(self, backbone, views):
        b = views[0].shape[0]
        feats = backbone(torch.cat(views).contiguous(memory_format=torch.channels_last))  # (9B, D), one pass
        return self.head(feats.reshape(len(views), b, -1).transpose(0, 1).reshape(b, -1))

    def loss(self, out, targets):
        logits = out.float()
        return {"loss": F.cross_entropy(logits, targets), "accuracy": (logits.argmax(1) == targets).float().mean()}
