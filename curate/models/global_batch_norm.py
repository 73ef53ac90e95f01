"""BatchNorm over the global batch of a DDP run, on any backend (gloo on CPU included).

torch's SyncBatchNorm refuses CPU tensors in torch 2.14 ("SyncBatchNorm expected input tensor to be
on GPU"), so a CPU DDP run would normalise each rank's rows by their own statistics: a different
recipe from one process's, and a noisier one. Here the per-channel mean and variance come from sums
all-reduced over the ranks, differentiably (two small all-reduces per layer per pass), so every rank
normalises its rows exactly as one process normalises the whole batch, and the running statistics
are the ones one process would keep. In eval mode, or outside a process group, it is plain BatchNorm.

    global_batch_norm(model)   # in place: every BatchNorm layer of model becomes a GlobalBatchNorm

A converted layer keeps its parameters and buffers (same names), so its state dict loads into
stock torchvision models.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from curate.distributed import current, sum_over_ranks

_PLAIN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm{1,2,3}d whose training statistics are those of the global batch (see the module docstring)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected an (N, C, ...) input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or current().size == 1:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local_n = xf.new_tensor([x.numel() // x.shape[1]])
        sums = sum_over_ranks(torch.cat([xf.sum(dims), local_n]))
        n = sums[-1].detach()  # a count: no gradient
        mean = sums[:-1] / n
        centred = xf - mean.view(shape)
        var = sum_over_ranks((centred * centred).sum(dims)) / n  # two passes: no E[x^2] - E[x]^2 cancellation
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach(), float(n))
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        """As nn.BatchNorm does: exponential (or, momentum None, cumulative) average; unbiased variance."""
        self.num_batches_tracked.add_(1)
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - m).add_(mean, alpha=m)
        self.running_var.mul_(1 - m).add_(var * n / max(n - 1.0, 1.0), alpha=m)


def global_batch_norm(module: nn.Module) -> nn.Module:
    """Turn every BatchNorm{1,2,3}d under `module` into a GlobalBatchNorm, in place; returns `module`.

    The layer's class is switched, not the layer replaced: it keeps its tensors, whether parameters or,
    in a momentum teacher (curate.models.ema.frozen_copy), buffers, and every reference to it.
    """
    for layer in module.modules():
        if type(layer) in _PLAIN:
            layer.__class__ = GlobalBatchNorm
    return module
