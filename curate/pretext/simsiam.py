"""SimSiam (Chen & He, 2021): each view predicts the other's embedding; a stop-gradient avoids collapse.

Teaches invariance to crops, flips and colour changes like SimCLR, but with no negatives and no
momentum teacher: the simplest and cheapest of the siamese methods (one network, one copy of the
weights), and it works with small batches. Pick it when memory or batch size is tight and the
budget is not very short: it starts slower than BYOL (its loss stays near 0 for the first
steps). Head: 3-layer projector with BatchNorm (2 layers, SimSiam's CIFAR variant, via
`projector_layers`) and a bottleneck predictor; loss: negative cosine similarity, symmetrised
over the two views. A collapse shows as `z_std` falling to 0 in the training log.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from curate.losses import negative_cosine
from curate.models.heads import mlp
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import make_views, normalize, siamese_views


@TASKS.register("simsiam")
class SimSiam(PretextTask):
    @dataclass
    class Config:
        projection_dim: int = 2048
        predictor_dim: int = 512  # the bottleneck: SimSiam needs it narrower than projection_dim
        projector_layers: int = 3
        min_scale: float = 0.2

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        # BN on the projector's output too (affine-free), as in the paper
        dim = cfg.projection_dim
        self.projector = mlp(feature_dim, dim, dim, layers=cfg.projector_layers, last_bn=True)
        self.predictor = mlp(cfg.projection_dim, cfg.predictor_dim, cfg.projection_dim)
        self.views = siamese_views(image_size, cfg.min_scale)

    def build_views(self, images, generator=None):
        return [normalize(make_views(images, self.views, generator)) for _ in range(2)], None

    def forward(self, backbone, views):
        """Projections (z1, z2) and predictions (p1, p2), each (B, projection_dim)."""
        z = self.projector(backbone(torch.cat(views)))
        p = self.predictor(z)
        return z.chunk(2), p.chunk(2)

    def loss(self, out, targets):
        (z1, z2), (p1, p2) = out
        # stop-gradient on the targets: without it the two branches collapse to a constant (paper, sec. 4.1)
        loss = (negative_cosine(p1, z2.detach()) + negative_cosine(p2, z1.detach())) / 2
        # the spread of the normalised projections: ~1/sqrt(dim) while healthy, 0 when collapsed
        spread = torch.nn.functional.normalize(z1.detach().float(), dim=1).std(0).mean()
        return {"loss": loss, "z_std": spread}
