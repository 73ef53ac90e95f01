"""Heads that pretext tasks put on top of the shared backbone."""
from __future__ import annotations

import torch.nn as nn


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2, batch_norm: bool = True, last_bn: bool = False) -> nn.Sequential:
    """Linear-(BN)-ReLU blocks ending in a Linear: the projection head of SimCLR/MoCo v2/BYOL."""
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        blocks += [nn.Linear(dim, hidden, bias=not batch_norm)]
        blocks += [nn.BatchNorm1d(hidden)] if batch_norm else []
        blocks += [nn.ReLU(inplace=True)]
        dim = hidden
    blocks.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        blocks.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*blocks)
