"""SimCLR (Chen et al., 2020): two augmented views of an image attract, all other images repel.

Teaches invariance to crops, flips and colour changes; the strongest general-purpose choice
for a small budget. Head: 2-layer MLP projector; loss: NT-Xent.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from curate.losses import nt_xent
from curate.models.heads import mlp
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import ViewConfig, make_views, normalize


@TASKS.register("simclr")
class SimCLR(PretextTask):
    @dataclass
    class Config:
        temperature: float = 0.2
        projection_dim: int = 128
        hidden_dim: int = 512
        min_scale: float = 0.2

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.projector = mlp(feature_dim, cfg.hidden_dim, cfg.projection_dim)
        self.views = ViewConfig(size=image_size, scale=(cfg.min_scale, 1.0), blur=0.5 if image_size >= 96 else 0.0)

    def build_views(self, images, generator=None):
        return [normalize(make_views(images, self.views, generator)) for _ in range(2)], None

    def forward(self, backbone, views):
        z = self.projector(backbone(torch.cat(views)))
        return z.chunk(2)

    def loss(self, out, targets):
        return {"loss": nt_xent(out[0], out[1], self.cfg.temperature)}
