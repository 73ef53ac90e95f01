"""Decoded-image cache: every image decoded once into a (N, S, S, 3) uint8 array on disk.

Training and embedding then read pixels at memory speed instead of decoding JPEGs every epoch.
Row i is manifest id i (unusable images are zero rows). Built in chunks with a resumable
partial file, so an interrupted build picks up where it stopped; a rebuild after images were added
or changed decodes only those (`images_S.keys.npy` records which content each row holds).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from curate import storage
from curate.data.images import ImageError, fit_square, load_rgb
from curate.data.manifest import content_keys, fingerprint, ok_mask
from curate.data.sources import Source, decode_item, item_sources
from curate.locks import locked
from curate.progress import Progress, report

log = logging.getLogger(__name__)
CHUNK = 2048
# (sources, size) -> decode_row of each: an image's path, or a frame's or object's Source (curate.data.sources)
DecodeFiles = Callable[[list, int], Iterable["np.ndarray | None"]]


def decode_square(path: Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8: shorter side resized to `size`, centre crop."""
    return fit_square(load_rgb(path, max_side=4 * size), size)


def decode_row(path: Path | Source | str, size: int) -> np.ndarray | None:
    """`decode_square` of an image (`decode_item` of a frame or object: curate.data.sources), or None for
    one that no longer decodes (its row stays zero; logged). Every engine decodes with this, so a row's
    pixels do not depend on where they were decoded."""
    source = Source.parse(path)
    try:
        return decode_square(Path(source.path), size) if source.kind == "image" else decode_item(source, size)
    except ImageError as err:  # changed on disk since the scan: zero row, reported
        log.warning("could not decode %s: %s (rescan with `curate scan`)", path, err)
        return None


def decode_threaded(paths: list, size: int, workers: int = 4, chunk: int = CHUNK) -> Iterator[np.ndarray | None]:
    """`decode_row` of each path, in order, by `workers` threads (Pillow releases the GIL), `chunk` files
    submitted at a time so that no more decoded images than that wait to be written."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(paths), max(1, chunk)):
            yield from pool.map(partial(decode_row, size=size), paths[start:start + max(1, chunk)])


def image_cache(root: Path, manifest: pd.DataFrame, size: int, cache_dir: Path, workers: int = 4,
                progress: Progress | None = None, chunk: int = CHUNK,
                decode_files: DecodeFiles | None = None) -> np.ndarray:
    """Return the read-only memmap (N, size, size, 3) uint8 of decoded images for this manifest, building it if needed.

    Row i is manifest id i; rows of images that are not `ok` (or fail to decode now) are zero.
    The cache is rebuilt when the manifest's fingerprint or length changes. A build interrupted
    after some chunks of `chunk` rows resumes at the first unfinished chunk. `decode_files(paths, size)`
    yields `decode_row` of each path in order (an engine's, curate.engines); default: `decode_threaded`
    with `workers` threads.
    """
    final = Path(cache_dir) / f"images_{size}.npy"
    meta_file = final.with_suffix(".json")
    stamp = {"fingerprint": fingerprint(manifest), "n": len(manifest), "size": size}
    cached = _open_if_current(final, meta_file, stamp)
    if cached is not None:
        return cached
    # one builder at a time: a second process waits, then finds the cache the first one built
    with locked(Path(cache_dir), f"images_{size}", what="another decode of this cache"):
        cached = _open_if_current(final, meta_file, stamp)
        return cached if cached is not None else _build(root, manifest, size, final, meta_file, stamp, workers,
                                                        progress, chunk, decode_files)


def _build(root, manifest, size: int, final: Path, meta_file: Path, stamp: dict, workers: int, progress,
           chunk: int, decode_files: DecodeFiles | None) -> np.ndarray:
    partial, partial_meta = final.with_suffix(".partial.npy"), final.with_suffix(".partial.json")
    arr, done = _open_partial(partial, partial_meta, stamp)
    paths = item_sources(root, manifest, Path(final).parent / "frames")
    usable = ok_mask(manifest)
    keys = np.where(usable, content_keys(manifest), 0).astype(np.uint64)
    old, same = _previous_rows(final, keys, size)  # ids are never reused: row i of the old cache is id i too

    n = stamp["n"]
    fresh = np.flatnonzero(usable & ~same)
    fresh = fresh[fresh >= done]  # rows to decode from their files, in order, asked for all at once
    todo = [paths[i] for i in fresh]
    decoded = iter(decode_files(todo, size) if decode_files is not None else decode_threaded(todo, size, workers))
    for start in range(done, n, max(1, chunk)):
        stop = min(n, start + max(1, chunk))
        for i in range(start, stop):
            if not usable[i]:
                arr[i] = 0
            elif same[i]:  # unchanged since the last build: its pixels are already decoded
                arr[i] = old[i]
            else:
                img = next(decoded)
                arr[i] = 0 if img is None else img
        arr.flush()  # rows on disk before the sidecar that counts them
        storage.write_json(partial_meta, {**stamp, "done": stop})
        report(progress, stop, n, stage=f"decode {size}px", unit="img")
    del arr, old
    # The old sidecar goes first: a crash between the steps below must not vouch for new rows.
    meta_file.unlink(missing_ok=True)
    partial.replace(final)
    storage.write_npy(_keys_file(final), keys)
    storage.write_json(meta_file, stamp)
    partial_meta.unlink(missing_ok=True)
    return np.load(final, mmap_mode="r")


def _keys_file(final: Path) -> Path:
    return final.with_suffix(".keys.npy")


def _previous_rows(final: Path, keys: np.ndarray, size: int) -> tuple[np.ndarray | None, np.ndarray]:
    """The last finished cache (or None) and (N,) True where its row holds the content `keys` names now."""
    same = np.zeros(len(keys), bool)
    try:
        if not (final.exists() and _keys_file(final).exists()):
            return None, same
        old, old_keys = np.load(final, mmap_mode="r"), np.load(_keys_file(final))
    except (OSError, ValueError):  # an unreadable leftover: decode everything
        return None, same
    if old.shape[1:] != (size, size, 3):
        return None, same
    n = min(len(keys), len(old_keys), len(old))
    same[:n] = (old_keys[:n] == keys[:n]) & (keys[:n] != 0)
    if same.any():
        log.info("image cache: %d of %d rows unchanged since the last build, %d to decode", int(same.sum()),
                 len(keys), int((keys != 0).sum() - same.sum()))
    return old, same


def _open_if_current(final: Path, meta_file: Path, stamp: dict) -> np.ndarray | None:
    """The finished cache if its sidecar matches `stamp` and its shape is right, else None."""
    if not (final.exists() and meta_file.exists()):
        return None
    try:
        meta = storage.read_json(meta_file)
        if any(meta.get(k) != v for k, v in stamp.items()):
            return None
        arr = np.load(final, mmap_mode="r")
    except (OSError, ValueError) as err:  # unreadable leftovers are rebuilt, not fatal
        log.warning("image cache %s unreadable (%s): rebuilding it", final, err)
        return None
    return arr if arr.shape == _shape(stamp) else None


def _open_partial(partial: Path, partial_meta: Path, stamp: dict) -> tuple[np.ndarray, int]:
    """A writable memmap for the build and the number of rows already done (0 for a fresh start)."""
    if partial.exists() and partial_meta.exists():
        try:
            meta = storage.read_json(partial_meta)
            if all(meta.get(k) == v for k, v in stamp.items()) and 0 < meta.get("done", 0) <= stamp["n"]:
                arr = np.load(partial, mmap_mode="r+")
                if arr.shape == _shape(stamp):
                    log.info("resuming image cache at row %d of %d", meta["done"], stamp["n"])
                    return arr, int(meta["done"])
        except (OSError, ValueError) as err:
            log.warning("partial image cache %s unreadable (%s): starting over", partial, err)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial_meta.unlink(missing_ok=True)
    return open_memmap(partial, mode="w+", dtype=np.uint8, shape=_shape(stamp)), 0


def _shape(stamp: dict) -> tuple[int, int, int, int]:
    return (stamp["n"], stamp["size"], stamp["size"], 3)
