"""Barlow Twins loss (Zbontar et al., 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction")."""
from __future__ import annotations

import torch


def standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each column of (N, D) to zero mean and unit variance over the batch (BatchNorm without affine).

    The biased variance, as `nn.BatchNorm1d` uses in training mode (the official implementation).
    """
    z = z.float()
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(N, D), (N, D) -> (D, D) matrix C with C[i, j] the correlation over the batch of z1[:, i] and z2[:, j]."""
    return standardize(z1, eps).T @ standardize(z2, eps) / z1.shape[0]


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, off_diagonal_weight: float = 5e-3,
                      eps: float = 1e-5) -> torch.Tensor:
    """Push the cross-correlation of two views' embeddings towards the identity matrix.

    z1, z2: (N, D) projector outputs of two views of the same N images (any scale: they are
    standardised per dimension here). Loss = sum_i (1 - C_ii)^2 + off_diagonal_weight * sum_{i != j} C_ij^2:
    the diagonal term makes each dimension invariant to the augmentations, the off-diagonal term
    decorrelates the dimensions (redundancy reduction), which is what prevents collapse. The paper
    uses off_diagonal_weight 5e-3 with D = 8192. Returns a scalar (it grows with D: ~D at start).

    >>> z = torch.tensor([[1., 1.], [1., -1.], [-1., 1.], [-1., -1.]])  # decorrelated, unit variance
    >>> float(barlow_twins_loss(z, z)) < 1e-8
    True
    """
    c = cross_correlation(z1, z2, eps)
    diag = torch.diagonal(c)
    on = (1 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + off_diagonal_weight * off
