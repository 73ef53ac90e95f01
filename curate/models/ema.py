"""Momentum (EMA) teachers: a frozen copy of a network that trails the online one.

Used by MoCo (key encoder), BYOL (target network) and DINO (teacher):
  teacher = frozen_copy(online)                        # once, in the task's setup()
  ema_update(teacher, online, cosine_momentum(0.99, p)) # after every optimiser step
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` whose parameters are turned into buffers of the same names.

    Buffers, not parameters with requires_grad=False, so the copy is invisible to
    `.parameters()` (the optimiser, weight decay, gradient checks, parameter counts) yet still
    in `state_dict()` (checkpoints and resume) and moved by `.to(device)`.
    """
    teacher = copy.deepcopy(module)
    for sub in teacher.modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            del sub._parameters[name]
            sub.register_buffer(name, param.detach())  # the deep copy is already private
    return teacher


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place, for every parameter of `online`: target <- momentum * target + (1 - momentum) * online.

    `target` is a copy of `online` (same names); its tensors may be parameters or buffers (see
    `frozen_copy`). Buffers of `online` (BatchNorm running statistics) are left alone: the teacher
    keeps its own, from its own forward passes.
    """
    tensors = dict(target.named_parameters())
    tensors.update(target.named_buffers())
    for name, param in online.named_parameters():
        tensors[name].mul_(momentum).add_(param.detach(), alpha=1.0 - momentum)


def cosine_momentum(base: float, progress: float, final: float = 1.0) -> float:
    """EMA momentum rising from `base` (progress 0) to `final` (progress 1) on a half cosine (BYOL, eq. in sec. 3.2)."""
    progress = min(max(progress, 0.0), 1.0)
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2
