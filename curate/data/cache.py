"""Decoded-image cache: every image decoded once into a (N, S, S, 3) uint8 array on disk.

Training and embedding then read pixels at memory speed instead of decoding JPEGs every epoch.
Row i is manifest id i (unusable images are zero rows). Built in chunks with a resumable
partial file, so an interrupted build picks up where it stopped.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from curate import storage
from curate.data.images import ImageError, fit_square, load_rgb
from curate.data.manifest import fingerprint
from curate.progress import Progress, report

log = logging.getLogger(__name__)
CHUNK = 2048


def decode_square(path: Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8: shorter side resized to `size`, centre crop."""
    return fit_square(load_rgb(path, max_side=4 * size), size)


def image_cache(root: Path, manifest: pd.DataFrame, size: int, cache_dir: Path, workers: int = 4,
                progress: Progress | None = None) -> np.ndarray:
    """Return the read-only memmap of decoded images for this manifest at `size`, building it if needed."""
    final = cache_dir / f"images_{size}.npy"
    meta_file = final.with_suffix(".json")
    key = fingerprint(manifest)
    n = len(manifest)
    if final.exists() and meta_file.exists() and storage.read_json(meta_file).get("fingerprint") == key:
        return np.load(final, mmap_mode="r")

    partial, partial_meta = final.with_suffix(".partial.npy"), final.with_suffix(".partial.json")
    done = 0
    if partial.exists() and partial_meta.exists():
        meta = storage.read_json(partial_meta)
        if meta.get("fingerprint") == key:
            done = meta["done"]
    if done == 0:
        cache_dir.mkdir(parents=True, exist_ok=True)
        arr = open_memmap(partial, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    else:
        arr = np.load(partial, mmap_mode="r+")
        log.info("resuming image cache at row %d of %d", done, n)

    paths = [root / p for p in manifest["path"]]
    usable = (manifest["status"] == "ok").to_numpy()

    def decode(i: int) -> np.ndarray | None:
        if not usable[i]:
            return None
        try:
            return decode_square(paths[i], size)
        except ImageError as err:  # changed on disk since the scan: zero row, reported
            log.warning("could not decode %s: %s (rescan with `curate scan`)", paths[i], err)
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(done, n, CHUNK):
            stop = min(n, start + CHUNK)
            for i, img in zip(range(start, stop), pool.map(decode, range(start, stop))):
                arr[i] = 0 if img is None else img
            arr.flush()
            storage.write_json(partial_meta, {"fingerprint": key, "done": stop, "size": size})
            report(progress, stop, n, stage=f"decode {size}px")
    del arr
    partial.replace(final)  # data first, then the sidecar that vouches for it
    storage.write_json(meta_file, {"fingerprint": key, "size": size, "n": n})
    partial_meta.unlink(missing_ok=True)
    return np.load(final, mmap_mode="r")
