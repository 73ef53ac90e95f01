"""SimCLR (Chen et al., 2020): two augmented views of an image attract, all other images repel.

Teaches invariance to crops, flips and colour changes; the strongest general-purpose choice
for a small budget. Head: 2-layer MLP projector; loss: NT-Xent.
"""
from __future__ import annotations

from dataclasses import dataclass

from curate.losses import nt_xent
from curate.models.heads import mlp
from curate.pretext.base import TASKS, TwoViewTask
from curate.transforms import siamese_views


@TASKS.register("simclr")
class SimCLR(TwoViewTask):
    @dataclass
    class Config:
        temperature: float = 0.2
        projection_dim: int = 128
        hidden_dim: int = 512
        min_scale: float = 0.2

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.projector = mlp(feature_dim, cfg.hidden_dim, cfg.projection_dim)
        self.views = siamese_views(image_size, cfg.min_scale)

    def loss(self, out, targets):
        return {"loss": nt_xent(out[0], out[1], self.cfg.temperature)}
