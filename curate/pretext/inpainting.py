"""Inpainting, the context encoder of Pathak et al. (2016): hide a rectangle of the image and paint it back.

Teaches context: to fill a hole plausibly the model must understand what surrounds it (the rest of a
face, the continuation of a road, the texture of a wall), so the features encode scene layout and
object shape rather than augmentation invariances. Predictions of a plain L2 loss are blurry, which is
fine here: the pixels are thrown away, only the backbone is kept. Pick it as an auxiliary task for
structured images (scenes, documents, faces) or when colour and crop invariance would throw away what
you need; it is weaker alone than a contrastive task for retrieval. Simplified from the paper: a random
box per image (filled with 0 after normalisation, the mean colour), a small convolutional decoder on
the backbone's spatial feature map, and an L2 loss on the hidden box only (no adversarial loss).
The logged loss is that masked-region MSE, in normalised pixel units.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from curate.losses.reconstruction import masked_mse
from curate.models.decoder import ConvDecoder
from curate.models.feature_map import backbone_feature_map
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import ViewConfig, make_views, normalize
from curate.transforms.draws import rand


def random_box_mask(batch: int, size: int, min_side: float = 0.25, max_side: float = 0.5, generator=None,
                    device=None) -> torch.Tensor:
    """(B, 1, size, size) bool, True inside one random axis-aligned box per sample.

    Box height and width are independent uniform fractions of `size` in [min_side, max_side] (at least
    one pixel), the box lies fully inside the image. Pathak et al.'s central box is min_side = max_side = 0.5.
    """
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return rand(batch, generator, device) * (hi - lo) + lo

    h = (uniform(min_side, max_side) * size).round().clamp(1, size).long()
    w = (uniform(min_side, max_side) * size).round().clamp(1, size).long()
    top = (uniform(0, 1) * (size - h + 1)).long().clamp(max=size - h)
    left = (uniform(0, 1) * (size - w + 1)).long().clamp(max=size - w)
    r = torch.arange(size, device=device)
    rows = (r >= top[:, None]) & (r < (top + h)[:, None])  # (B, size)
    cols = (r >= left[:, None]) & (r < (left + w)[:, None])
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)


@TASKS.register("inpainting")
class Inpainting(PretextTask):
    @dataclass
    class Config:
        min_box: float = 0.25  # box side as a fraction of the image side
        max_box: float = 0.5  # 0.5 x 0.5 = a quarter of the image, Pathak et al.'s central region
        min_scale: float = 0.5

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.decoder = ConvDecoder(feature_dim, 3)
        self.views = ViewConfig(size=image_size, scale=(cfg.min_scale, 1.0), jitter=0.5, grayscale=0.1)

    def build_views(self, images, generator=None):
        """[masked image (B, 3, S, S)]; targets: (normalised unmasked image, (B, 1, S, S) bool mask)."""
        x = normalize(make_views(images, self.views, generator))
        mask = random_box_mask(x.shape[0], self.image_size, self.cfg.min_box, self.cfg.max_box, generator, x.device)
        return [x.masked_fill(mask, 0.0)], (x, mask)

    def forward(self, backbone, views):
        return self.decoder(backbone_feature_map(backbone, views[0]), self.image_size)

    def loss(self, out, targets):
        image, mask = targets
        return {"loss": masked_mse(out, image, mask)}
