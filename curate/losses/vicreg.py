"""VICReg loss (Bardes, Ponce & LeCun, 2022, "VICReg: Variance-Invariance-Covariance Regularization").

The three terms follow the official implementation (facebookresearch/vicreg), which is what the
published weights 25/25/1 were tuned for: the variance term averages the two branches (half the
paper's sum), the covariance term sums them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between the embeddings of the two views. (N, D), (N, D) -> scalar."""
    return F.mse_loss(z1.float(), z2.float())


def variance_loss(z1: torch.Tensor, z2: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Hinge keeping every dimension's standard deviation over the batch above gamma (no collapse).

    (N, D), (N, D) -> scalar: mean over dimensions of max(0, gamma - sqrt(var + eps)), averaged over
    the two views. Unbiased variance, as in the official code.
    """
    def hinge(z: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(z.float().var(0) + eps)
        return F.relu(gamma - std).mean()

    return (hinge(z1) + hinge(z2)) / 2


def covariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances over the batch, divided by D, summed over the two views.

    (N, D), (N, D) -> scalar. Drives the dimensions to carry different information.
    """
    def off_diagonal_energy(z: torch.Tensor) -> torch.Tensor:
        n, d = z.shape
        z = z.float() - z.float().mean(0)
        cov = z.T @ z / (n - 1)
        return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d

    return off_diagonal_energy(z1) + off_diagonal_energy(z2)


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, invariance_weight: float = 25.0, variance_weight: float = 25.0,
                covariance_weight: float = 1.0) -> torch.Tensor:
    """The VICReg objective for (N, D) expander outputs of two views of the same N images -> scalar.

    >>> z = torch.tensor([[2., 2.], [2., -2.], [-2., 2.], [-2., -2.]])  # std > 1, decorrelated
    >>> float(vicreg_loss(z, z))
    0.0
    """
    return (invariance_weight * invariance_loss(z1, z2) + variance_weight * variance_loss(z1, z2)
            + covariance_weight * covariance_loss(z1, z2))
