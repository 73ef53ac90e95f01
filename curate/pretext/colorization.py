"""Colorization (Zhang, Isola & Efros, 2016, simplified): predict the colours of a greyscale image.

Teaches semantics through their typical colours: to paint grass green, sky blue and a stop sign red,
the model must recognise grass, sky and stop signs from shape and texture alone. Pick it as an
auxiliary task next to one that sees colour (SimCLR, say): alone, the encoder never sees a colour
image in training, yet `curate embed` feeds it colour images. Skip it when colour is what tells your
classes apart. Simplified from the paper: regression of the Lab ab channels at 1/4 resolution with an
L1 loss (no quantised-bin classification, no class rebalancing), decoded from the backbone's spatial
feature map (`backbone_feature_map`). The logged loss is that L1 error, in ab units / 110.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from curate.models.decoder import ConvDecoder
from curate.models.feature_map import backbone_feature_map
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import ViewConfig, make_views, normalize

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, the greyscale the augmentations use
# linear sRGB -> CIE XYZ, D65 white point (IEC 61966-2-1)
_RGB2XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])
_XYZ2RGB = torch.linalg.inv(_RGB2XYZ)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])
_DELTA = 6 / 29
AB_SCALE = 110.0  # |a|, |b| stay below ~110 for sRGB colours: targets land in about [-1, 1]


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> (B, 3, H, W) CIE Lab (D65): L in [0, 100], a and b in about [-110, 110]."""
    x = x.float().clamp(0, 1)
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = torch.einsum("ij,bjhw->bihw", _RGB2XYZ.to(x.device), lin) / _WHITE.to(x.device).view(1, 3, 1, 1)
    f = torch.where(xyz > _DELTA ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * _DELTA ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) CIE Lab (D65) -> (B, 3, H, W) sRGB in [0, 1] (out-of-gamut colours clipped)."""
    lum, a, b = lab.float().unbind(1)
    fy = (lum + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], 1)
    xyz = torch.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4 / 29)) * _WHITE.to(lab.device).view(1, 3, 1, 1)
    lin = torch.einsum("ij,bjhw->bihw", _XYZ2RGB.to(lab.device), xyz)
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return rgb.clamp(0, 1)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 3, H, W) grey (luma in all three channels), so the backbone's input stays RGB."""
    weights = torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def ab_target(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> (B, 2, size, size) ab channels / AB_SCALE, area-averaged to `size`."""
    return rgb_to_lab(F.adaptive_avg_pool2d(x, size))[:, 1:] / AB_SCALE


@TASKS.register("colorization")
class Colorization(PretextTask):
    @dataclass
    class Config:
        output_stride: int = 4  # colours predicted at image_size / 4, as in Zhang et al.
        min_scale: float = 0.5

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        self.out_size = max(1, image_size // cfg.output_stride)
        self.decoder = ConvDecoder(feature_dim, 2)
        # crops and flips only: colour jitter would change the very colours to be predicted
        self.views = ViewConfig(size=image_size, scale=(cfg.min_scale, 1.0), jitter=0.0, grayscale=0.0)

    def build_views(self, images, generator=None):
        """[grey image (B, 3, S, S), normalised]; target: (B, 2, S/4, S/4) ab colour map."""
        x = make_views(images, self.views, generator)
        return [normalize(to_grey(x))], ab_target(x, self.out_size)

    def forward(self, backbone, views):
        return self.decoder(backbone_feature_map(backbone, views[0]), self.out_size)

    def loss(self, out, targets):
        return {"loss": F.l1_loss(out.float(), targets)}
