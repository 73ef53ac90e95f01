"""Rotation prediction (Gidaris et al., 2018): classify which of 0/90/180/270 degrees an image was turned.

Teaches the canonical orientation of objects (sky up, wheels down), which needs some notion of
what the object is. Cheap, label-free, and a good auxiliary task next to a contrastive one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from curate.pretext.base import TASKS, PretextTask
from curate.transforms import ViewConfig, make_views, normalize
from curate.transforms.draws import randint


def rotate_batch(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate sample i of (B, C, H, W) by k[i] * 90 degrees counter-clockwise (H == W)."""
    out = x.clone()
    for turns in range(1, 4):
        sel = k == turns
        if sel.any():
            out[sel] = torch.rot90(x[sel], turns, dims=(2, 3))
    return out


@TASKS.register("rotation")
class Rotation(PretextTask):
    @dataclass
    class Config:
        hidden_dim: int = 256

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.head = nn.Sequential(nn.Linear(feature_dim, cfg.hidden_dim), nn.ReLU(inplace=True), nn.Linear(cfg.hidden_dim, 4))
        # mild augmentation: strong crops would hide the cues that give orientation away
        self.views = ViewConfig(size=image_size, scale=(0.5, 1.0), jitter=0.5, grayscale=0.1)

    def build_views(self, images, generator=None):
        k = randint(4, images.shape[0], generator, images.device)
        return [normalize(rotate_batch(make_views(images, self.views, generator), k))], k

    def forward(self, backbone, views):
        return self.head(backbone(views[0]))

    def loss(self, out, targets):
        logits = out.float()
        return {"loss": F.cross_entropy(logits, targets), "accuracy": (logits.argmax(1) == targets).float().mean()}
