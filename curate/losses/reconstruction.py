"""Reconstruction losses restricted to a region (the context encoder of Pathak et al., 2016)."""
from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked elements only.

    pred, target: (B, C, H, W); mask: (B, 1, H, W) or (B, C, H, W), bool or {0, 1}, True where the
    error counts (the hidden region). Pixels outside the mask do not change the value or the
    gradient. Returns a scalar; 0 when the mask is empty.

    >>> p, t = torch.zeros(1, 1, 2, 2), torch.tensor([[[[2., 9.], [0., 0.]]]])
    >>> float(masked_mse(p, t, torch.tensor([[[[True, False], [False, False]]]])))
    4.0
    """
    weight = mask.to(torch.float32).expand_as(pred)
    err = (pred.float() - target.float()).pow(2) * weight
    return err.sum() / weight.sum().clamp_min(1.0)
