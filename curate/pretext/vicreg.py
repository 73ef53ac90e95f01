"""VICReg (Bardes, Ponce & LeCun, 2022): two views of an image get the same embedding, and three explicit
terms keep the embedding space from collapsing.

Teaches the same invariances as SimCLR (crops, flips, colour changes) without negatives and without
comparing images to each other: Invariance pulls the two views together (MSE), Variance keeps every
dimension's spread over the batch above 1, Covariance decorrelates the dimensions. Each term is
logged, so a collapse shows up as a rising variance term. Pick it, like Barlow Twins, for small
batches or when you want a non-contrastive objective whose failure modes are easy to read. Head:
3-layer MLP expander (2048 wide for small images); loss: `curate.losses.vicreg_loss`, weights 25/25/1.
Train it with AdamW (its preset; the paper uses LARS): with plain SGD at lr 0.06 it diverges within
ten steps (measured). Next to an SGD-trained task give it a small weight, e.g. `--task vicreg:0.04`.
"""
from __future__ import annotations

from dataclasses import dataclass

from curate.distributed import gather
from curate.losses.vicreg import covariance_loss, invariance_loss, variance_loss
from curate.models.heads import mlp
from curate.pretext.base import TASKS, TwoViewTask
from curate.transforms import siamese_views


@TASKS.register("vicreg")
class VICReg(TwoViewTask):
    @dataclass
    class Config:
        projection_dim: int = 2048
        hidden_dim: int = 2048
        invariance_weight: float = 25.0
        variance_weight: float = 25.0
        covariance_weight: float = 1.0
        min_scale: float = 0.2

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.projector = mlp(feature_dim, cfg.hidden_dim, cfg.projection_dim, layers=3)
        self.views = siamese_views(image_size, cfg.min_scale)

    def loss(self, out, targets):
        z1, z2 = gather(out[0]), gather(out[1])  # batch statistics over the global batch in a DDP run
        terms = {"invariance": invariance_loss(z1, z2), "variance": variance_loss(z1, z2),
                 "covariance": covariance_loss(z1, z2)}
        c = self.cfg
        total = (c.invariance_weight * terms["invariance"] + c.variance_weight * terms["variance"]
                 + c.covariance_weight * terms["covariance"])
        return {"loss": total, **terms}
