"""MoCo v2 (He et al., 2020; Chen et al., 2020): contrast each image with thousands of earlier ones from a queue.

Teaches what SimCLR teaches (invariance to crops, flips and colour; different images apart),
but the negatives come from a queue of keys made by a slowly moving (momentum) copy of the
network, so it sees thousands of negatives at any batch size. Pick it over SimCLR when batches
must stay small (large images, little memory) and you have clearly more images than the queue
holds (4,096 by default): on a tiny set the queue is full of stale copies of the same images.
Head: 2-layer MLP; loss: InfoNCE against the queue, symmetrised over the two views.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from curate.distributed import gather
from curate.losses import infonce
from curate.models.ema import cosine_momentum, ema_update, frozen_copy
from curate.models.heads import mlp
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import make_views, normalize, siamese_views


def grouped_forward(net: nn.Module, x: torch.Tensor, groups: int) -> torch.Tensor:
    """net over `groups` slices of x (N, ...) separately, so BatchNorm statistics stay within a slice."""
    return torch.cat([net(part) for part in x.chunk(groups)])


@torch.no_grad()
def enqueue(queue: torch.Tensor, keys: torch.Tensor, ptr: int) -> torch.Tensor:
    """A copy of queue (K, D) with keys (N, D), L2-normalised, written from row ptr on, wrapping around (FIFO)."""
    out = queue.clone()
    keys = F.normalize(keys.float(), dim=1)[-len(queue):]  # more keys than rows: the newest win
    rows = (ptr + torch.arange(len(keys), device=queue.device)) % len(queue)
    out[rows] = keys.to(queue.dtype)
    return out


@TASKS.register("moco")
class MoCo(PretextTask):
    @dataclass
    class Config:
        temperature: float = 0.2
        queue_size: int = 4096
        projection_dim: int = 128
        hidden_dim: int = 2048
        momentum: float = 0.99  # key-encoder EMA momentum at the start; rises to 1 on a cosine
        min_scale: float = 0.2
        bn_groups: int = 4  # BatchNorm groups emulating MoCo's shuffled per-GPU BN (1 = off)

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.projector = mlp(feature_dim, cfg.hidden_dim, cfg.projection_dim, batch_norm=False)
        self.views = siamese_views(image_size, cfg.min_scale)
        # random unit keys to start with, as in the paper; buffers, so checkpoints keep the queue
        self.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, cfg.projection_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.key_backbone = self.key_projector = None  # made in setup(), from the shared backbone
        self._new_keys: torch.Tensor | None = None  # this step's keys, queued in on_step_end

    def setup(self, backbone):
        self.key_backbone = frozen_copy(backbone)
        self.key_projector = frozen_copy(self.projector)

    def build_views(self, images, generator=None):
        """Two query views, then the same 2B images shuffled for the key encoder; targets: the shuffle (2B,)."""
        views = [normalize(make_views(images, self.views, generator)) for _ in range(2)]
        # shuffled, an image's key mostly lands in another BatchNorm group than its query (MoCo's "shuffling BN")
        # (in a DDP run, a shuffle of this rank's rows: it keeps the generator in step on every rank)
        shuffle = torch.randperm(2 * images.shape[0], generator=generator, device=images.device)
        keys = torch.cat(views)[shuffle].contiguous(memory_format=torch.channels_last)
        return views + list(keys.chunk(2)), shuffle

    def forward(self, backbone, views):
        """Queries (2B, projection_dim) of views[:2]; keys (2B, projection_dim) of views[2:], still shuffled.

        Without the grouping a query could find its key by the batch statistics both carry, the
        "cheating" that MoCo's per-GPU shuffled BatchNorm prevents; in one process we split the batch.
        """
        groups = max(1, min(self.cfg.bn_groups, views[0].shape[0] // 2))
        q = self.projector(torch.cat([grouped_forward(backbone, v, groups) for v in views[:2]]))
        with torch.no_grad():
            k = self.key_projector(torch.cat([grouped_forward(self.key_backbone, v, groups) for v in views[2:]]))
        self._new_keys = gather(k, grad=False)  # every rank queues the global batch's keys; order does not matter
        return q, k

    def loss(self, out, targets):
        q, shuffled = out
        k = torch.empty_like(shuffled)
        k[targets] = shuffled  # undo the shuffle: k[i] is the key of q[i]
        (q1, q2), (k1, k2) = q.chunk(2), k.chunk(2)
        # each view is the query for the other's key; the queue holds only earlier batches' keys
        t = self.cfg.temperature
        return {"loss": (infonce(q1, k2, self.queue, t) + infonce(q2, k1, self.queue, t)) / 2}

    def on_step_end(self, backbone, progress):
        m = cosine_momentum(self.cfg.momentum, progress)
        ema_update(self.key_backbone, backbone, m)
        ema_update(self.key_projector, self.projector, m)
        if self._new_keys is not None:
            self.queue.copy_(enqueue(self.queue, self._new_keys, int(self.queue_ptr)))
            self.queue_ptr.fill_((int(self.queue_ptr) + len(self._new_keys)) % len(self.queue))
            self._new_keys = None

