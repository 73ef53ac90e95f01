"""Barlow Twins (Zbontar et al., 2021): make the embeddings of two views agree dimension by dimension,
while every dimension carries different information.

Teaches the same invariances as SimCLR (crops, flips, colour changes) without negatives: the
cross-correlation matrix of the two views' embeddings is pushed to the identity (diagonal = invariance,
off-diagonal = no redundancy between dimensions). Pick it instead of SimCLR when batches are small
(it does not need many negatives per batch) or as a second view-invariance objective. Head: 3-layer
MLP projector (2048 wide for small images); loss: `curate.losses.barlow_twins_loss`, whose value grows
with the projector width, so the task divides it by that width (a per-dimension average, ~1 at the
start): its gradients are then on the scale of the other tasks' and `--task simclr --task barlow_twins`
weights mean what they say. The division changes the step size only, not the optimum.
"""
from __future__ import annotations

from dataclasses import dataclass

from curate.distributed import gather
from curate.losses.barlow_twins import barlow_twins_loss
from curate.models.heads import mlp
from curate.pretext.base import TASKS, TwoViewTask
from curate.transforms import siamese_views

REFERENCE_DIM = 2048  # the width at which off-diagonal weight 5e-3 is used on CIFAR (solo-learn, lightly)


@TASKS.register("barlow_twins")
class BarlowTwins(TwoViewTask):
    @dataclass
    class Config:
        projection_dim: int = 2048
        hidden_dim: int = 2048
        off_diagonal_weight: float | None = None  # lambda; None: 5e-3 * 2048 / projection_dim
        min_scale: float = 0.2

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        # no BN after the last layer: the loss standardises each dimension over the batch itself
        self.projector = mlp(feature_dim, cfg.hidden_dim, cfg.projection_dim, layers=3)
        self.views = siamese_views(image_size, cfg.min_scale)
        # the off-diagonal sum has D^2 terms against D on the diagonal: keep lambda * D constant
        self.off_diagonal_weight = (cfg.off_diagonal_weight if cfg.off_diagonal_weight is not None
                                    else 5e-3 * REFERENCE_DIM / cfg.projection_dim)

    def loss(self, out, targets):
        # the paper's sum is ~D at init, with ~600x SimCLR's backbone gradient (measured); in a 40-step SGD run
        # it rose 50% before falling back, while the per-dimension average (~1) fell steadily
        loss = barlow_twins_loss(gather(out[0]), gather(out[1]), self.off_diagonal_weight) / self.cfg.projection_dim
        return {"loss": loss}
