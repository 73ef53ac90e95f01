"""BYOL (Grill et al., 2020): predict a slow-moving teacher's embedding of another view of the image.

Teaches the same invariances as SimCLR (crops, flips, colour, blur, solarisation) but without
negatives: nothing pushes different images apart, so it does not need big batches and does not
split near-duplicates or images of one class from each other. Pick it when batches are small,
when your images are very alike (one product, one site, one microscope), or as a strong
alternative to SimCLR. Online: backbone -> projector -> predictor; target: an EMA copy of backbone
and projector whose momentum rises from 0.99 to 1; loss: 2 - 2 cos, symmetrised over the views.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from curate.losses import normalized_mse
from curate.models.ema import cosine_momentum, ema_update, frozen_copy
from curate.models.heads import mlp
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import ViewConfig, make_views, normalize


def byol_views(image_size: int, min_scale: float) -> tuple[ViewConfig, ViewConfig]:
    """BYOL's asymmetric pair: view 1 always blurred, view 2 rarely blurred but sometimes solarised.

    Blur is skipped below 96 px, where a few pixels are all there is (solo-learn's CIFAR recipe).
    """
    blur = image_size >= 96
    common = dict(size=image_size, scale=(min_scale, 1.0), saturation=0.2)
    return (ViewConfig(**common, blur=1.0 if blur else 0.0),
            ViewConfig(**common, blur=0.1 if blur else 0.0, solarize=0.2))


@TASKS.register("byol")
class BYOL(PretextTask):
    @dataclass
    class Config:
        projection_dim: int = 256
        hidden_dim: int = 4096
        momentum: float = 0.99  # EMA momentum at the start; rises to 1 on a cosine over training
        min_scale: float = 0.2  # smallest crop area; BYOL uses 0.08, larger crops learn faster on short budgets

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.projector = mlp(feature_dim, cfg.hidden_dim, cfg.projection_dim)
        self.predictor = mlp(cfg.projection_dim, cfg.hidden_dim, cfg.projection_dim)
        self.views = byol_views(image_size, cfg.min_scale)
        self.target_backbone = self.target_projector = None  # made in setup(), from the shared backbone

    def setup(self, backbone):
        self.target_backbone = frozen_copy(backbone)
        self.target_projector = frozen_copy(self.projector)

    def build_views(self, images, generator=None):
        return [normalize(make_views(images, cfg, generator)) for cfg in self.views], None

    def forward(self, backbone, views):
        """Online predictions (p1, p2) and EMA targets (z1, z2), each (B, projection_dim)."""
        x = torch.cat(views)
        p = self.predictor(self.projector(backbone(x)))
        with torch.no_grad():
            z = self.target_projector(self.target_backbone(x))
        return p.chunk(2), z.chunk(2)

    def loss(self, out, targets):
        (p1, p2), (z1, z2) = out
        # each view predicts the target's embedding of the *other* view; averaged, so the scale is 0..4
        return {"loss": (normalized_mse(p1, z2.detach()) + normalized_mse(p2, z1.detach())) / 2}

    def on_step_end(self, backbone, progress):
        m = cosine_momentum(self.cfg.momentum, progress)
        ema_update(self.target_backbone, backbone, m)
        ema_update(self.target_projector, self.projector, m)
