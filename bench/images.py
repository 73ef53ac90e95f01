"""The decoded-image set train and embed run on: a real JPEG subset, scanned and cached by curate itself.

The subset is a copy of the first n/k files of each of the k class folders, so `scan_folder` and
`image_cache` see an ordinary image folder (curate's scan refuses symlinks that leave the folder).
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.data.cache import image_cache
from curate.data.manifest import ok_mask
from curate.data.scan import list_images, scan_folder
from curate.train.config import auto_image_size


@dataclass
class DecodedImages:
    """(N, S, S, 3) uint8 cache rows of the usable images, and what building them cost."""

    images: np.ndarray
    rows: np.ndarray  # usable rows (manifest ids)
    manifest: pd.DataFrame
    image_size: int
    source: Path
    scan_s: float
    decode_s: float


def copy_subset(src: Path, n: int, dest: Path) -> int:
    """Copy a class-balanced subset of n images of `src` (or all, if fewer) into `dest`; the number copied."""
    classes = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    groups = [list_images(c) for c in classes] if classes else [list_images(src)]
    per_group = math.ceil(n / len(groups))
    copied = 0
    for files in groups:
        for f in files[:per_group][: n - copied]:
            target = dest / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            copied += 1
    return copied


def build_decoded(src: Path, n: int, work: Path) -> DecodedImages:
    """Scan and decode-cache about n images of `src` under `work`, timing both steps (cold cache)."""
    folder = work / "images"
    copy_subset(src, n, folder)
    t0 = time.perf_counter()
    manifest, _ = scan_folder(folder)
    scan_s = time.perf_counter() - t0
    ok = manifest[ok_mask(manifest)]
    size = auto_image_size(float(np.median(np.minimum(ok["width"], ok["height"]))))  # as `curate train` picks
    t0 = time.perf_counter()
    images = image_cache(folder, manifest, size, work / "cache")
    decode_s = time.perf_counter() - t0
    return DecodedImages(images, np.flatnonzero(ok_mask(manifest)), manifest, size, src, scan_s, decode_s)
