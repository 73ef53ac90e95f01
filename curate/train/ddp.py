"""The DDP pieces of the training loop: the rank's device, one training step wrapped in
DistributedDataParallel, and the draws of this rank's rows of each batch.

In a single process each is the plain thing (the device asked for, `MultiTask.step_losses`, plain
draws), so the loop has one path. In a process group every BatchNorm layer normalises over the
global batch (curate.models.global_batch_norm; torch 2.14's SyncBatchNorm refuses CPU tensors), so
with the gathered contrastive losses and the shared draws a rank computes its share of exactly the
step one process would take.
"""
from __future__ import annotations

import contextlib
from functools import partial

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from curate.distributed import World
from curate.models.global_batch_norm import global_batch_norm
from curate.transforms.draws import BatchShard, drawing_for


def rank_device(device: torch.device, world: World) -> torch.device:
    """This rank's GPU (cuda:LOCAL_RANK) in a multi-process CUDA run, else `device`."""
    if device.type == "cuda" and world.size > 1:
        return torch.device("cuda", world.local_rank)
    return device


class _Step(nn.Module):
    """The backbone and the tasks as one module, so DDP sees every trained parameter in one forward."""

    def __init__(self, backbone: nn.Module, tasks: nn.Module):
        super().__init__()
        self.backbone, self.tasks = backbone, tasks

    def forward(self, batch: torch.Tensor, generator, autocast) -> dict[str, torch.Tensor]:
        return self.tasks.step_losses(self.backbone, batch, generator, autocast)


def step_function(backbone: nn.Module, tasks: nn.Module, world: World, device: torch.device):
    """`(images, generator, autocast) -> logs` for one step: MultiTask.step_losses, through DDP in a
    process group (gradients averaged over the ranks in the backward pass).

    Buffers are synced once, at the start, not at every step: what must agree across ranks
    (BatchNorm statistics, MoCo's queue, DINO's center) is computed from global sums and gathers.
    """
    if world.size == 1:
        return partial(tasks.step_losses, backbone)
    step = global_batch_norm(_Step(backbone, tasks))
    return DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def batch_shard(rows: slice, total: int, world: World):
    """A context in which the random draws of a step are this rank's `rows` of the global batch's (see
    curate.transforms.draws); a no-op in one process."""
    if world.size == 1:
        return contextlib.nullcontext()
    return drawing_for(BatchShard(rows.start, rows.stop - rows.start, total))
