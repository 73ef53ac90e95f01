"""Augmented views of a batch of images as a handful of batched tensor ops.

Every random parameter is drawn per sample, but the work is done for the whole batch at once:
random-resized-crop + flip is one `affine_grid`/`grid_sample`; brightness, contrast, saturation,
hue and greyscale fold into one 3x3 colour matrix per sample; blur is one grouped convolution.
On a CPU this is ~100x cheaper than torchvision's per-image PIL pipeline in workers. Random parameters
come from curate.transforms.draws, so a DDP rank draws its rows of what one process would draw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from curate.transforms.draws import rand

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)
# RGB <-> YIQ: hue is a rotation of the IQ plane
_RGB2YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@dataclass
class ViewConfig:
    """Augmentation recipe for one view (SimCLR's defaults, scaled for small images)."""

    size: int = 32
    scale: tuple[float, float] = (0.2, 1.0)  # crop area fraction
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio
    flip: float = 0.5
    jitter: float = 0.8  # probability of colour jitter
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale: float = 0.2
    blur: float = 0.0  # probability of Gaussian blur (SimCLR uses 0.5 on ImageNet, none on CIFAR)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize: float = 0.0  # probability of solarization (BYOL/DINO use 0.2 on one of the two views)


def siamese_views(size: int, min_scale: float = 0.2) -> ViewConfig:
    """SimCLR's recipe for two-view methods: crops down to `min_scale` of the area, flips, colour
    jitter, greyscale; Gaussian blur only from 96 px up (on tiny images it erases the content)."""
    return ViewConfig(size=size, scale=(min_scale, 1.0), blur=0.5 if size >= 96 else 0.0)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) or (B, 3, H, W) uint8 -> (B, 3, H, W) float in [0, 1]."""
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    return images.float().div_(255.0)


def normalize(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> normalised, channels_last for faster convolutions."""
    m = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def make_views(x: torch.Tensor, cfg: ViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """One augmented view of every image. x: (B, 3, H, W) float in [0, 1] -> (B, 3, size, size) in [0, 1]."""
    x = random_resized_crop(x, cfg.size, cfg.scale, cfg.ratio, cfg.flip, generator)
    x = colour_jitter(x, cfg, generator)
    if cfg.blur > 0:
        x = random_blur(x, cfg.blur, cfg.blur_sigma, generator)
    if cfg.solarize > 0:  # drawn only when asked for, so other recipes keep their random streams
        x = random_solarize(x, cfg.solarize, generator)
    return x


def _uniform(n: int, lo: float, hi: float, like: torch.Tensor, generator) -> torch.Tensor:
    return rand(n, generator, like.device) * (hi - lo) + lo


def random_resized_crop(x, size: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip: float = 0.5, generator=None):
    """Per-sample random crop (area fraction in `scale`, aspect in `ratio`), resized to `size`, h-flipped with p=flip."""
    b = x.shape[0]
    area = _uniform(b, *scale, x, generator)
    log_r = _uniform(b, math.log(ratio[0]), math.log(ratio[1]), x, generator)
    w = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)  # crop width as a fraction of the image width
    h = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
    cx = (rand(b, generator, x.device) * 2 - 1) * (1 - w)  # centre in [-1, 1] coords
    cy = (rand(b, generator, x.device) * 2 - 1) * (1 - h)
    sign = torch.where(rand(b, generator, x.device) < flip, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def colour_matrices(b: int, cfg: ViewConfig, device, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (B, 3, 3) colour matrix and (B,) contrast blend weight.

    Composes brightness, saturation, hue and greyscale as linear maps; contrast blends towards the
    image's mean grey level (the only data-dependent part, applied in `colour_jitter`).
    """
    eye = torch.eye(3, device=device).expand(b, 3, 3)
    luma = torch.tensor(_LUMA, device=device)
    grey = torch.ones(3, 1, device=device) @ luma.view(1, 3)  # x -> grey level in every channel
    on = rand(b, generator, device) < cfg.jitter

    def factor(strength: float) -> torch.Tensor:
        f = _uniform(b, max(0.0, 1 - strength), 1 + strength, eye, generator)
        return torch.where(on, f, torch.ones_like(f))

    bright, contrast, sat = factor(cfg.brightness), factor(cfg.contrast), factor(cfg.saturation)
    angle = _uniform(b, -cfg.hue, cfg.hue, eye, generator) * 2 * math.pi * on
    yiq = torch.tensor(_RGB2YIQ, device=device)
    rot = torch.zeros(b, 3, 3, device=device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(angle), -torch.sin(angle)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(angle), torch.cos(angle)
    hue = torch.linalg.inv(yiq) @ rot @ yiq
    saturation = sat.view(b, 1, 1) * eye + (1 - sat).view(b, 1, 1) * grey
    m = hue @ saturation @ (bright.view(b, 1, 1) * eye)
    to_grey = rand(b, generator, device) < cfg.grayscale
    m = torch.where(to_grey.view(b, 1, 1), grey @ m, m)
    return m, contrast


def colour_jitter(x: torch.Tensor, cfg: ViewConfig, generator=None) -> torch.Tensor:
    """Brightness, contrast, saturation, hue and random greyscale for a (B, 3, H, W) batch in [0, 1]."""
    b = x.shape[0]
    m, contrast = colour_matrices(b, cfg, x.device, generator)
    y = torch.einsum("bij,bjhw->bihw", m, x)
    # contrast: blend with the mean grey of the image (grey commutes with the colour matrix up to luma)
    mean_grey = (y * torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)).sum(1).mean((1, 2))
    c = contrast.view(b, 1, 1, 1)
    return (c * y + (1 - c) * mean_grey.view(b, 1, 1, 1)).clamp_(0, 1)


def random_blur(x: torch.Tensor, p: float, sigma=(0.1, 2.0), generator=None) -> torch.Tensor:
    """Gaussian blur with per-sample sigma on a random subset (probability p); one grouped conv."""
    b, c, hgt, wid = x.shape
    k = max(3, (min(hgt, wid) // 10) | 1)
    s = _uniform(b, *sigma, x, generator)
    s = torch.where(rand(b, generator, x.device) < p, s, torch.full_like(s, 1e-3))
    r = torch.arange(k, device=x.device, dtype=x.dtype) - k // 2
    kern = torch.exp(-(r.view(1, k) ** 2) / (2 * s.view(b, 1) ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, k)
    flat = x.reshape(1, b * c, hgt, wid)
    flat = F.conv2d(F.pad(flat, (k // 2, k // 2, 0, 0), mode="reflect"), kern.view(b * c, 1, 1, k), groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, k // 2, k // 2), mode="reflect"), kern.view(b * c, 1, k, 1), groups=b * c)
    return flat.view(b, c, hgt, wid)


def random_solarize(x: torch.Tensor, p: float, generator=None, threshold: float = 0.5) -> torch.Tensor:
    """Invert pixels at or above `threshold` (PIL's solarize) in a random subset (probability p) of a (B, 3, H, W) batch in [0, 1]."""
    chosen = rand(x.shape[0], generator, x.device) < p
    solarized = torch.where(x >= threshold, 1.0 - x, x)
    return torch.where(chosen.view(-1, 1, 1, 1), solarized, x)
