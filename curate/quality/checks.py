"""Per-image quality checks (cleanvision-like): metrics measured once, flags re-derived from thresholds.

Metrics are cheap pixel statistics of the image decoded at most `ANALYSIS_SIDE` px a side, plus
two shape figures from the manifest's width and height:

| metric | meaning | flag (QualityConfig field) |
|---|---|---|
| `brightness_p99` | 99th percentile of perceived luminance, 0..1 | `dark`: even the brightest pixels are dim |
| `brightness_p05` | 5th percentile of perceived luminance, 0..1 | `bright`: even the darkest pixels are light |
| `sharpness` | Laplacian std at full resolution / at half resolution | `blurry` |
| `entropy` | Shannon entropy of the 256-bin grey histogram, bits (0..8) | `low_information` |
| `channel_spread` | 99th percentile over pixels of (max - min) channel, 0..1 | `grayscale` |
| `aspect_ratio` | long side / short side (>= 1) | `odd_aspect_ratio` |
| `size_ratio` | pixel count / median pixel count of the usable images | `odd_size` (either way) |

Perceived luminance is sqrt(0.241 R² + 0.691 G² + 0.068 B²), as in cleanvision. Sharpness compares
the finest octave of detail with the next one: the std of the 4-neighbour Laplacian of the grey
image over the same on the image 2x2-averaged. Natural images have a roughly 1/f spectrum, the same
energy in every octave, so a sharp photo scores ~0.67 whatever its size, exposure or contrast
(measured: median 0.669 on 32 px CIFAR-10 and on 300 px Caltech-101 alike), while blur empties the
finest octave first and drives it towards ~0.28 (the 2x2 average's own floor); noise scores up to
~2. Blur finer than a pixel at ANALYSIS_SIDE is not seen: large photos are judged as they look at
that size.

`flags(metrics, cfg)` is pure and cheap, so the app can move thresholds without re-measuring.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from curate.data.images import load_rgb

ANALYSIS_SIDE = 256  # images are measured downscaled to at most this side: enough to see blur, cheap to decode
IMAGE_METRICS = ("brightness_p99", "brightness_p05", "sharpness", "entropy", "channel_spread")  # need pixels
SHAPE_METRICS = ("aspect_ratio", "size_ratio")  # from the manifest's width and height
METRIC_COLUMNS = IMAGE_METRICS + SHAPE_METRICS
FLAG_COLUMNS = ("dark", "bright", "blurry", "low_information", "odd_aspect_ratio", "odd_size", "grayscale")


class Thresholds:
    """A dataclass of flag thresholds that saves to and loads from a dict (the workspace's JSON)."""
    what = "thresholds"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {cls.what} {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


@dataclass
class QualityConfig(Thresholds):
    """Thresholds of every flag. Chosen on real images: 3,000 of CIFAR-10 train (32 px) and the
    2,603 Caltech-101 photos (100-700 px), clean and with planted problems; each comment gives the
    share of clean images flagged (CIFAR / Caltech) and what a planted problem scores."""

    # brightness_p99 below: the brightest pixels under ~1/3 of full scale. Clean: 0.1% / 0.0%
    # (0.1% quantiles 0.42 / 0.43); any image darkened to 35% of its values is <= 0.35.
    # cleanvision's default: 0.32.
    dark: float = 0.36
    # brightness_p05 above: even the darkest pixels are light. Clean: 0.07% / 0.9% (Caltech's
    # white-background product shots, which this is meant to catch); an image washed out to
    # 0.35 x + 0.65 (of 255) scores >= 0.647. cleanvision's default: 0.95, washed-out images only.
    bright: float = 0.62
    # sharpness below. Clean: 0.03% / 0.4% (clean medians 0.67 / 0.67); Gaussian blur of 1.5 px on
    # 32 px images: 99th percentile 0.36; of 3 px on 300 px photos: 95th 0.47, median 0.35;
    # a 2x upscale: <= 0.41. A 0.7 px blur at 32 px (median 0.47) is borderline by design.
    blurry: float = 0.45
    # entropy (bits) below: about 6 grey levels or fewer in use. Clean: 0.0% / 0.7% (clip art and
    # product shots on flat white); a flat image scores 0, a two-tone one 1, photos 5-7.8. At 3.0,
    # 1.6% of Caltech would be flagged, mostly objects on flat backgrounds; a photo with its
    # contrast cut to 3% scores 1.4-3.0 (median 2.4).
    low_information: float = 2.5
    # aspect_ratio above: strips and panoramas. Caltech's own photos reach 3.5 (its airplanes):
    # 1.2% of them are above 3.0, 12% above 2.0. cleanvision: short/long < 0.35, i.e. > 2.86.
    odd_aspect_ratio: float = 3.0
    # size_ratio above this or below its inverse: 4x the pixel count is 2x the side. Caltech's
    # photos span 0.37x-1.5x of their median: 0% flagged. A 2x upscale (exactly 4x) is not flagged.
    odd_size: float = 4.0
    # channel_spread below (0..1): colour photos spread far more (median 0.28 / 0.34); greyscale
    # images, also saved as RGB JPEGs, score 0. Flagged: 1.5% / 5.6%, nearly all genuinely grey
    # (CIFAR holds ~1.3% grey photos, Caltech 129 mode-L ones and its greyscale car_side class);
    # colour images under it: 0.13% / 0.08%; colour images darkened to 35%: 1.7% (chroma shrinks too).
    grayscale: float = 0.02
    what = "quality thresholds"  # a class attribute (no annotation): not a field


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Perceived luminance of (..., 3) uint8 pixels, 0..1 (cleanvision's formula)."""
    x = rgb.astype(np.float32)
    return np.sqrt(x[..., 0] ** 2 * 0.241 + x[..., 1] ** 2 * 0.691 + x[..., 2] ** 2 * 0.068) / 255.0


def measure(rgb: np.ndarray) -> np.ndarray:
    """The IMAGE_METRICS of one (H, W, 3) uint8 image, in that order: float64 (5,). Any size >= 1x1."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected a non-empty (H, W, 3) image, got shape {rgb.shape}")
    p05, p99 = np.percentile(luminance(rgb), [5, 99])
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as PIL's "L"
    counts = np.bincount(np.clip(np.rint(grey), 0, 255).astype(np.intp).ravel(), minlength=256)
    p = counts[counts > 0] / grey.size
    entropy = float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no negative zero for a flat image
    spread = np.ptp(rgb, axis=2)
    return np.array([p99, p05, sharpness(grey), entropy, np.percentile(spread, 99) / 255.0])


def sharpness(grey: np.ndarray) -> float:
    """Laplacian std of a (H, W) float grey image over that of its 2x2 average: ~0.67 sharp, ~0.3 blurred.

    0 for a flat image or one too small to halve (under 2 px a side).
    """
    fine = _laplacian_std(grey)
    h, w = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    g = grey[:h, :w]
    coarse = _laplacian_std((g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2]) / 4)
    return fine / coarse if coarse > 1e-3 else 0.0  # coarse ~0: flat at that scale, nothing to compare


def _laplacian_std(grey: np.ndarray) -> float:
    g = np.pad(grey, 1, mode="edge")  # replicated edges: no false edge at the border, any size works
    return float((4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]).std())


def measure_file(path: str | Path, max_side: int = ANALYSIS_SIDE) -> np.ndarray:
    """IMAGE_METRICS of one image file decoded at most `max_side` px; raises ImageError if unusable."""
    return measure(np.asarray(load_rgb(path, max_side=max_side)))


def shape_metrics(width: np.ndarray, height: np.ndarray, usable: np.ndarray | None = None) -> pd.DataFrame:
    """`aspect_ratio` (long/short side) and `size_ratio` (pixels / median pixels of `usable` rows);
    NaN where a side is 0 (unreadable images)."""
    w, h = np.asarray(width, np.float64), np.asarray(height, np.float64)
    valid = (w > 0) & (h > 0)
    usable = valid if usable is None else valid & np.asarray(usable, bool)
    area = np.where(valid, w * h, np.nan)
    median = float(np.median(area[usable])) if usable.any() else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(valid, np.maximum(w, h) / np.minimum(w, h), np.nan)
        return pd.DataFrame({"aspect_ratio": aspect, "size_ratio": area / median})


def flags(metrics: pd.DataFrame, cfg: QualityConfig | None = None) -> pd.DataFrame:
    """The FLAG_COLUMNS (nullable boolean, NA where the metric is missing) for a frame holding METRIC_COLUMNS.

    Pure and vectorised: re-run it with other thresholds at no cost. Same index as `metrics`.
    """
    cfg = QualityConfig() if cfg is None else cfg
    m = metrics
    tests = {
        "dark": (m["brightness_p99"], lambda v: v < cfg.dark),
        "bright": (m["brightness_p05"], lambda v: v > cfg.bright),
        "blurry": (m["sharpness"], lambda v: v < cfg.blurry),
        "low_information": (m["entropy"], lambda v: v < cfg.low_information),
        "odd_aspect_ratio": (m["aspect_ratio"], lambda v: v > cfg.odd_aspect_ratio),
        "odd_size": (m["size_ratio"], lambda v: (v > cfg.odd_size) | (v < 1.0 / cfg.odd_size)),
        "grayscale": (m["channel_spread"], lambda v: v < cfg.grayscale),
    }
    out = {}
    for name, (values, test) in tests.items():
        v = values.to_numpy(np.float64, na_value=np.nan)
        out[name] = pd.array(np.where(np.isnan(v), None, test(v)), dtype="boolean")
    return pd.DataFrame(out, index=metrics.index)
