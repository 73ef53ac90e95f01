"""SimCLR (Chen et al., 2020): two augmented views of an image attract, all other images repel.

Teaches invariance to crops, flips and colour changes; the strongest general-purpose choice
for a small budget. Head: 2-layer MLP projector; loss: NT-Xent.

Optional scaled-down start (`low_res_size`, `low_res_fraction`): the first part of the budget on
smaller views, a fraction of the cost per step, then full size (Cao & Wu's S3L, FFCV's progressive
resizing); the ResNet's global pool takes any size.

Optional multi-crop (`local_crops`, as in SwAV/DINO): extra small crops at half the side, each
pulled towards the two full views of its image. A half-side crop costs a quarter of a full view,
so four of them add the price of one view and many more positive pairs per image decoded.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from curate.distributed import gather
from curate.losses import multi_view_nt_xent, nt_xent
from curate.models.heads import mlp
from curate.pretext.base import TASKS, TwoViewTask
from curate.transforms import ViewConfig, make_views, normalize, siamese_views


@TASKS.register("simclr")
class SimCLR(TwoViewTask):
    @dataclass
    class Config:
        temperature: float = 0.2
        projection_dim: int = 128
        hidden_dim: int = 512
        min_scale: float = 0.2
        local_crops: int = 0  # small crops at half the side, besides the two full views (0 = plain SimCLR)
        local_scale: tuple[float, float] = (0.05, 0.25)  # area fraction of the small crops
        low_res_size: int = 0  # > 0: train on views of this side first (cheaper steps, as in S3L/FFCV) ...
        low_res_fraction: float = 0.0  # ... for this fraction of the budget, then at full size

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.projector = mlp(feature_dim, cfg.hidden_dim, cfg.projection_dim)
        self.views = siamese_views(image_size, cfg.min_scale)
        if cfg.low_res_size and cfg.low_res_fraction > 0:
            self.views.size = cfg.low_res_size  # from the first step; on_step_end switches to full size
        self.local_view = ViewConfig(size=max(8, image_size // 2), scale=tuple(cfg.local_scale),
                                     blur=self.views.blur)

    def build_views(self, images: torch.Tensor, generator: torch.Generator | None = None):
        full = [normalize(make_views(images, self.views, generator)) for _ in range(2)]
        small = [normalize(make_views(images, self.local_view, generator)) for _ in range(self.cfg.local_crops)]
        return full + small, None

    def forward(self, backbone, views):
        out = list(self.projector(backbone(torch.cat(views[:2]))).chunk(2))
        if len(views) > 2:  # one pass for all small crops (a different size, so a separate batch)
            out += list(self.projector(backbone(torch.cat(views[2:]))).chunk(len(views) - 2))
        return out

    def on_step_end(self, backbone, progress: float) -> None:
        low = self.cfg.low_res_size and progress < self.cfg.low_res_fraction
        self.views.size = self.cfg.low_res_size if low else self.image_size

    def loss(self, out, targets):
        out = [gather(z) for z in out]  # in a DDP run the negatives are the whole global batch
        if len(out) == 2:
            return {"loss": nt_xent(out[0], out[1], self.cfg.temperature)}
        return {"loss": multi_view_nt_xent(out, 2, self.cfg.temperature)}
