"""DINO (Caron et al., 2021): a student matches a momentum teacher's soft "cluster" assignments across crops.

Teaches local-to-global correspondence on top of the usual invariances: the student sees small
local crops (a wheel, an eye, a patch of texture) and must give the same distribution over
4,096 learnt prototypes as the teacher gives for the whole image, so features come to encode
what the parts belong to. The embeddings tend to form clean clusters, which suits near-duplicate
and cluster-based curation. Costlier per step than SimCLR or BYOL (six crops) and it has more
knobs; pick it when you have the time budget and care about semantic grouping. Multi-crop
(2 global + 4 local views), an EMA teacher on the global views only, centering and sharpening
of the teacher output against collapse; loss: cross-entropy between different views.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from curate.distributed import gather
from curate.losses import dino_loss, teacher_temperature, update_center
from curate.models.ema import cosine_momentum, ema_update, frozen_copy
from curate.models.heads import mlp
from curate.pretext.base import TASKS, PretextTask
from curate.pretext.byol import byol_views
from curate.transforms import ViewConfig, make_views, normalize

log = logging.getLogger(__name__)


class DINOHead(nn.Module):
    """(B, in_dim) features -> 3-layer MLP -> L2-normalised bottleneck -> weight-normalised linear -> (B, out_dim)."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256, out_dim: int = 4096):
        super().__init__()
        self.mlp = mlp(in_dim, hidden_dim, bottleneck_dim, layers=3)
        self.last = nn.Linear(bottleneck_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=1)
        # unit-norm rows: weight normalisation with the gain fixed at 1 (DINO's norm_last_layer, for stability)
        return F.linear(z, F.normalize(self.last.weight, dim=1))


@TASKS.register("dino")
class DINO(PretextTask):
    @dataclass
    class Config:
        out_dim: int = 4096  # prototypes; 65,536 in the paper, 4,096 suits thousands of images
        hidden_dim: int = 2048
        bottleneck_dim: int = 256
        local_crops: int = 4  # small crops at half the image size, seen by the student only (0 = off)
        global_min_scale: float = 0.4  # global crops cover 40-100% of the image ...
        local_min_scale: float = 0.05  # ... local ones 5-40%
        student_temperature: float = 0.1
        teacher_temperature: float = 0.07
        warmup_teacher_temperature: float = 0.04  # colder teacher at first, warmed up linearly ...
        warmup_fraction: float = 0.3  # ... over this fraction of training
        center_momentum: float = 0.9
        momentum: float = 0.99  # teacher EMA momentum at the start; rises to 1 on a cosine

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.head = DINOHead(feature_dim, cfg.hidden_dim, cfg.bottleneck_dim, cfg.out_dim)
        self.global_views = byol_views(image_size, cfg.global_min_scale)  # DINO uses BYOL's augmentations
        self.local_view = ViewConfig(size=max(8, image_size // 2), scale=(cfg.local_min_scale, cfg.global_min_scale),
                                     saturation=0.2, blur=0.5 if image_size >= 96 else 0.0)
        # buffers, so checkpoints keep them: the running center of teacher logits, and where training is
        self.register_buffer("center", torch.zeros(cfg.out_dim))
        self.register_buffer("progress", torch.zeros(()))
        self.local_crops = cfg.local_crops
        self.teacher_backbone = self.teacher_head = None  # made in setup(), from the shared backbone
        self._teacher_out: torch.Tensor | None = None  # this step's teacher logits, for the center update

    def setup(self, backbone):
        if self.local_crops and getattr(backbone, "image_size", None) is not None:
            # a ViT's position embeddings fix its input size: it cannot take the smaller local crops
            log.warning("dino: the backbone only takes %s px inputs; training without local crops", backbone.image_size)
            self.local_crops = 0
        self.teacher_backbone = frozen_copy(backbone)
        self.teacher_head = frozen_copy(self.head)

    def build_views(self, images, generator=None):
        """[global 1, global 2, local 1, ..., local n]: (B, 3, S, S) twice, then (B, 3, S/2, S/2) n times."""
        views = [normalize(make_views(images, cfg, generator)) for cfg in self.global_views]
        n = self.local_crops
        if n:  # all local crops in one batched call
            local = make_views(images.repeat(n, 1, 1, 1), self.local_view, generator)
            views += list(normalize(local).chunk(n))
        return views, None

    def forward(self, backbone, views):
        """Student logits (V, B, out_dim) for all V views; teacher logits (2, B, out_dim) for the global ones."""
        b = views[0].shape[0]
        # one backbone pass per resolution, the head once over all features (DINO's multi-crop wrapper)
        feats = [backbone(torch.cat(views[:2]))] + ([backbone(torch.cat(views[2:]))] if len(views) > 2 else [])
        student = self.head(torch.cat(feats)).view(len(views), b, -1)
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher_backbone(torch.cat(views[:2]))).view(2, b, -1)
        self._teacher_out = gather(teacher.reshape(-1, teacher.shape[-1]), grad=False)  # the center of the global batch
        return student, teacher

    def loss(self, out, targets):
        student, teacher = out
        c = self.cfg
        temp = teacher_temperature(float(self.progress), c.warmup_teacher_temperature, c.teacher_temperature,
                                   c.warmup_fraction)
        return {"loss": dino_loss(student, teacher.detach(), self.center, c.student_temperature, temp)}

    def on_step_end(self, backbone, progress):
        self.progress.fill_(progress)
        m = cosine_momentum(self.cfg.momentum, progress)
        ema_update(self.teacher_backbone, backbone, m)
        ema_update(self.teacher_head, self.head, m)
        if self._teacher_out is not None:
            self.center.copy_(update_center(self.center, self._teacher_out, self.cfg.center_momentum))
            self._teacher_out = None
