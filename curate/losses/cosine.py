"""Cosine regression losses of the negative-free methods: BYOL (Grill et al., 2020) and SimSiam (Chen & He, 2021).

Both pull a prediction towards a target embedding of another view of the same image. Gradients
flow into both arguments: detach the target (stop-gradient) in the caller, where the method
decides it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of -cos(prediction[i], target[i]) over the batch: SimSiam's D(p, z) (eq. 1), in [-1, 1].

    prediction, target: (B, D), any scale. Returns a scalar.

    >>> negative_cosine(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]]))
    tensor(-1.)
    """
    return -F.cosine_similarity(prediction.float(), target.float(), dim=1).mean()


def normalized_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL's loss (eq. 2): mean over the batch of ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z), in [0, 4].

    prediction, target: (B, D), any scale. Returns a scalar.

    >>> normalized_mse(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]]))
    tensor(2.)
    """
    return 2 - 2 * F.cosine_similarity(prediction.float(), target.float(), dim=1).mean()
