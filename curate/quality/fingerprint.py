"""Pixel fingerprints: each image as a tiny grey thumbnail, the pixel-level evidence for near duplicates.

An image becomes a `THUMB` x `THUMB` x 3 uint8 YCbCr thumbnail of the whole frame (aspect ratio
ignored, as perceptual hashes do), 3 KB an image. Two things are derived from its luma, both cheap:

- `dct_codes`: the lowest `BAND` x `BAND` 2-D DCT coefficients without the DC term, L2-normalised.
  Their inner product is the correlation of the two low-pass images, so it ignores brightness
  (DC dropped) and contrast (normalised), and barely moves under re-encoding, resizing, blur,
  sharpening and noise, which live in the high frequencies. A pHash is the sign pattern of the same
  coefficients; keeping the values gives a graded score and a FAISS inner-product index for
  candidates instead of hash buckets.
- `mirror_codes`: the codes of the left-right mirrored thumbnails, for free (a horizontal flip
  negates the odd horizontal frequencies). Used to find flipped copies when asked, and as the
  calibration's null: an image against a *mirrored other* image is certainly not a duplicate.

The thumbnails also feed `curate.quality.alignment`, which checks candidate pairs pixel by pixel.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from curate.data.images import load_rgb

THUMB = 32  # thumbnail side (px): enough for a 16 px comparison after alignment, 1 KB an image
BAND = 8  # DCT coefficients kept per axis: 63 numbers after dropping DC
DECODE_SIDE = 4 * THUMB  # decode at most this large (JPEG draft mode): a thumbnail needs no more


def thumbnail(img: Image.Image) -> np.ndarray:
    """(THUMB, THUMB, 3) uint8 YCbCr thumbnail of a PIL image, the whole frame squeezed to a square.

    Box filtering averages every source pixel, so noise and JPEG artefacts shrink away and a
    resized copy (down or up) gives the same thumbnail as its original.
    """
    return np.asarray(img.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BOX).convert("YCbCr"), dtype=np.uint8)


def thumbnail_file(path: str | Path) -> np.ndarray:
    """`thumbnail` of an image file; raises curate.data.images.ImageError when it cannot be decoded."""
    return thumbnail(load_rgb(path, max_side=DECODE_SIDE))


@lru_cache(maxsize=4)
def dct_matrix(n: int = THUMB, k: int = BAND) -> np.ndarray:
    """(k, n) float32: the first k rows of the orthonormal DCT-II basis of length n."""
    x = np.arange(n) + 0.5
    basis = np.cos(np.pi * np.arange(k)[:, None] * x[None, :] / n) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def dct_codes(thumbs: np.ndarray, band: int = BAND) -> np.ndarray:
    """(N, band*band - 1) float32 L2-normalised low-frequency DCT codes of the luma of (N, T, T, 3) thumbnails.

    Row-major over (vertical frequency, horizontal frequency), DC removed. A flat thumbnail (no
    structure to compare) gets a zero code, which matches nothing.
    """
    t = np.asarray(thumbs[..., 0], np.float32)
    d = dct_matrix(t.shape[1], band)
    coef = np.einsum("uy,nyx,vx->nuv", d, t, d, optimize=True).reshape(len(t), -1)[:, 1:]
    norm = np.linalg.norm(coef, axis=1, keepdims=True)
    return np.divide(coef, norm, out=np.zeros_like(coef), where=norm > 1e-3 * t.shape[1])


def mirror_codes(codes: np.ndarray, flip: str = "lr", band: int = BAND) -> np.ndarray:
    """The `dct_codes` of the mirrored thumbnails: a left-right flip ("lr") changes the sign of the odd
    horizontal frequencies, an upside-down one ("ud") of the odd vertical ones."""
    odd = (-1.0) ** np.arange(band)
    sign = (np.tile(odd, band) if flip == "lr" else np.repeat(odd, band))[1:].astype(np.float32)
    return codes * sign
