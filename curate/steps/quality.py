"""`curate quality`: per-image quality metrics and flags, written as columns of manifest.parquet.

The same decode also gives each image's pixel fingerprint (a 32 px YCbCr thumbnail,
curate.quality.fingerprint) for the near-duplicate search, kept in fingerprints.npy (row = id).

Incremental and resumable: only usable rows without metrics are measured (a rescan drops the
metrics of changed files), in chunks, and the manifest is rewritten atomically after a chunk
(fingerprint rows are flushed first), so an interrupted run keeps what it measured: after the first
chunk, then whenever the measuring since the last write took WRITE_EVERY times as long as that write.
Flags are re-derived for every row on each run (the size median moves as images come and go) from the
thresholds given, which are saved in quality.json.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from curate import storage
from curate.clock import now
from curate.data.images import ImageError
from curate.data.items import has_items, kinds
from curate.quality.box_checks import FLAG_COLUMNS as BOX_FLAG_COLUMNS, box_flags, box_metrics, image_box_flags
from curate.quality.box_checks import BoxCheckConfig
from curate.data.sources import Source, item_sources, load_item
from curate.data.manifest import ok_mask
from curate.locks import locked
from curate.progress import Progress, report
from curate.quality.checks import ANALYSIS_SIDE, FLAG_COLUMNS, IMAGE_METRICS, QualityConfig, flags, measure, shape_metrics
from curate.quality.fingerprint import THUMB, thumbnail
from curate.steps.options import RunOptions
from curate.workspace import Workspace, resolve_inside

log = logging.getLogger(__name__)
CHUNK = 4096  # images measured between two fingerprint flushes (and at most between two manifest writes)
# A manifest write re-flags every row and rewrites the whole parquet: 1.25 s at 50,000 rows (40,000 objects,
# bench/objects_scale.py), growing with the rows. Written after every chunk, that made the step quadratic (305
# writes of 1.25M rows for 1M objects); written once the measuring since the last write took 10x as long,
# writing stays under ~10% of the step and an interruption loses at most that much measuring.
WRITE_EVERY = 10


def fingerprints(ws: Workspace) -> np.ndarray:
    """The (N, 32, 32, 3) uint8 fingerprint thumbnails (row = id; zero rows: not measured), read-only."""
    file = ws.fingerprints_file
    if not file.exists():
        raise FileNotFoundError(f"{file.name} missing in {ws.path}: run `curate quality -w {ws.path}` first")
    return np.load(file, mmap_mode="r")


def metrics_and_fingerprint(path: Path | Source) -> tuple[np.ndarray, np.ndarray]:
    """(IMAGE_METRICS values, fingerprint thumbnail) of one item (an image file, a frame, an object's crop),
    from one decode."""
    img = load_item(path, max_side=ANALYSIS_SIDE)
    return measure(np.asarray(img)), thumbnail(img)


def quality(ws: Workspace, cfg: QualityConfig | None = None, progress: Progress | None = None, workers: int = 4,
            chunk: int = CHUNK) -> pd.DataFrame:
    """Measure what is missing, flag every row with `cfg` (None: the thresholds saved by the last run, so a
    rerun of `curate run` keeps the ones a user set), save; returns the manifest with the new columns.
    Waits for a scan or another check that is rewriting the manifest (each reads it, then writes it whole)."""
    with locked(ws.locks_dir, "manifest", what="a scan or quality check"):
        return _measure_and_flag(ws, cfg, progress, workers, chunk)


def _measure_and_flag(ws: Workspace, cfg: QualityConfig | None, progress: Progress | None, workers: int,
                      chunk: int) -> pd.DataFrame:
    cfg = (saved_config(ws) or QualityConfig()) if cfg is None else cfg
    manifest = with_quality_columns(ws.manifest())
    thumbs, have_thumb = _open_fingerprints(ws, len(manifest))
    todo = np.flatnonzero(ok_mask(manifest) & (manifest["entropy"].isna().to_numpy() | ~have_thumb))
    sources = item_sources(ws.root, manifest, ws.frame_store_dir) if has_items(manifest) else None
    failed, unsaved = 0, True
    written_at, write_s = -np.inf, 0.0  # when the manifest was last written, and how long that took
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # Pillow and numpy release the GIL
        for start in range(0, len(todo), chunk):
            rows = todo[start:start + chunk]
            paths = [_path(ws.root, rel) for rel in manifest["path"].iloc[rows]]
            if sources is not None:  # frames and objects are decoded from their parent (curate.data.sources)
                paths = [None if p is None else sources[i] for i, p in zip(rows, paths)]
            values = np.full((len(rows), len(IMAGE_METRICS)), np.nan, np.float32)
            for i, result in enumerate(pool.map(_measure, paths)):
                if result is None:
                    failed += 1
                else:
                    values[i], thumbs[rows[i]] = result
                report(progress, start + i + 1, len(todo), stage="quality", unit="img")
            thumbs.flush()  # fingerprints on disk before the manifest rows that vouch for them
            for j, col in enumerate(IMAGE_METRICS):
                manifest.loc[rows, col] = values[:, j]  # row i is id i, so positions are labels
            unsaved = True
            if time.perf_counter() - written_at >= WRITE_EVERY * write_s:
                write_s, written_at, unsaved = *_timed_save(ws, manifest, cfg), False
    if unsaved:  # the last chunks, or nothing measured: thresholds or the size median may have changed
        _save(ws, manifest, cfg)
    if failed:
        log.warning("%d images could not be decoded for the quality checks: they changed since the scan, "
                    "run `curate scan` again", failed)
    counts = {f: int(manifest[f].sum()) for f in FLAG_COLUMNS}
    storage.write_json(ws.quality_file, {"config": cfg.to_dict(), "analysis_side": ANALYSIS_SIDE,
                                          "measured": int(len(todo) - failed), "failed": failed,
                                          "checked": int(manifest["entropy"].notna().sum()), "flagged": counts,
                                          "created": now()})
    return manifest


def saved_config(ws: Workspace) -> QualityConfig | None:
    """The thresholds the last `quality` run used, or None if it never ran."""
    file = ws.quality_file
    return QualityConfig.from_dict(storage.read_json(file)["config"]) if file.exists() else None


def with_quality_columns(manifest: pd.DataFrame) -> pd.DataFrame:
    """A copy with every image-metric column present: NaN where not measured yet and for rows that
    are not usable (a removed file keeps its row, not its measurements)."""
    manifest = manifest.copy()
    usable = ok_mask(manifest)
    for col in IMAGE_METRICS:
        values = manifest[col].to_numpy(np.float32, na_value=np.nan) if col in manifest else np.nan
        manifest[col] = np.where(usable, values, np.nan).astype("float32")
    return manifest


def _open_fingerprints(ws: Workspace, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A writable (n, T, T, 3) memmap of fingerprints, grown from an older file (rows kept), and
    (n,) bool: rows that hold one. A row's thumbnail is flushed before its metrics are saved, so in
    a file that already existed every row with metrics has its thumbnail; only rows beyond an older,
    shorter file (or all, in a new file) need measuring for it."""
    file = ws.fingerprints_file
    old = None
    if file.exists():
        try:
            old = np.load(file, mmap_mode="r+")
        except (OSError, ValueError) as err:  # a torn file is rebuilt, not fatal
            log.warning("fingerprints %s unreadable (%s): measuring them again", file, err)
    if old is not None and old.shape == (n, THUMB, THUMB, 3):
        return old, np.ones(n, bool)
    kept = 0
    with storage.atomic_path(file) as tmp:
        new = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, THUMB, THUMB, 3))
        if old is not None and old.shape[1:] == new.shape[1:]:
            kept = min(n, len(old))
            new[:kept] = old[:kept]
        new.flush()
        del new
    return np.load(file, mmap_mode="r+"), np.arange(n) < kept


def _measure(path: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    if path is None:
        return None
    try:
        return metrics_and_fingerprint(path)
    except ImageError as err:
        log.debug("quality: cannot decode %s: %s", path, err)
        return None


def _path(root: Path, rel: str) -> Path | None:
    try:
        return resolve_inside(root, rel)
    except PermissionError:
        return None


def _timed_save(ws: Workspace, manifest: pd.DataFrame, cfg: QualityConfig) -> tuple[float, float]:
    """_save, returning (seconds it took, when it ended)."""
    start = time.perf_counter()
    _save(ws, manifest, cfg)
    end = time.perf_counter()
    return end - start, end


def _save(ws: Workspace, manifest: pd.DataFrame, cfg: QualityConfig) -> None:
    """Refresh shape metrics and flags of every row in place, then write the manifest atomically."""
    usable = ok_mask(manifest)
    found = kinds(manifest)
    for kind in set(found[usable].tolist()) or {"image"}:  # sizes compare within a kind: a box is no odd image
        mine = usable & (found == kind)
        shape = shape_metrics(manifest["width"].to_numpy(), manifest["height"].to_numpy(), mine)
        for col in shape:
            values = manifest[col].to_numpy(np.float32, na_value=np.nan) if col in manifest else \
                np.full(len(manifest), np.nan, np.float32)
            manifest[col] = np.where(mine, shape[col].to_numpy(), np.where(usable, values, np.nan)).astype("float32")
    flagged = flags(manifest, cfg)
    for col in FLAG_COLUMNS:
        manifest[col] = flagged[col]
    if (found == "object").any():
        for col in ("odd_size", "odd_aspect_ratio"):  # a box's shape is the annotation checks' business
            manifest.loc[found == "object", col] = False
        for col, values in annotation_flags(ws, manifest).items():
            manifest[col] = values
    ws.save_manifest(manifest)


def annotation_flags(ws: Workspace, manifest: pd.DataFrame, cfg: BoxCheckConfig | None = None) -> dict[str, np.ndarray]:
    """The annotation checks (curate.quality.box_checks) as (N,) manifest columns: per object the box flags
    (annotated twice, overlapping another class, tiny, extreme aspect ratio, cut by the border), per image
    of the annotated set `n_boxes` and the no-boxes / many-boxes flags. False elsewhere."""
    found = kinds(manifest)
    objects = manifest[(found == "object") & (manifest["status"] == "ok").to_numpy()]
    boxes = pd.DataFrame({"image": objects["parent"].astype(int).to_numpy(), "label": objects["label"].to_numpy(),
                          **{c: objects[c].to_numpy(np.float64) for c in ("x0", "y0", "x1", "y1")},
                          "iscrowd": False, "problem": None}, index=objects["id"].to_numpy())
    parents = manifest.iloc[np.unique(boxes["image"].to_numpy())]
    sizes = pd.DataFrame({"width": parents["width"].to_numpy(), "height": parents["height"].to_numpy()},
                         index=parents["id"].to_numpy())
    box = box_flags(box_metrics(boxes, sizes), cfg)
    out = {}
    for col in BOX_FLAG_COLUMNS:
        out[col] = np.zeros(len(manifest), bool)
        out[col][box.index.to_numpy()] = box[col].fillna(False).to_numpy(bool)
    annotated = storage.read_json(ws.annotations_file).get("images", []) if ws.annotations_file.exists() else []
    ids = manifest.loc[manifest["path"].isin(annotated).to_numpy() & (found == "image"), "id"].to_numpy()
    per_image = image_box_flags(ids, boxes, cfg)
    out["n_boxes"] = np.zeros(len(manifest), np.int64)
    for col in ("n_boxes", "no_boxes", "many_boxes"):
        out.setdefault(col, np.zeros(len(manifest), bool))
        out[col][per_image.index.to_numpy(np.int64)] = per_image[col].to_numpy()
    return out


@dataclass(frozen=True)
class QualitySummary:
    flagged: dict  # flag -> images flagged
    manifest_file: Path
    thresholds_file: Path

    def lines(self) -> list[str]:
        counts = ", ".join(f"{n} {flag}" for flag, n in self.flagged.items())
        return [f"quality checks: {counts} -> {self.manifest_file} (thresholds in {self.thresholds_file})"]


def run(ws: Workspace, options: RunOptions | None = None, progress: Progress | None = None,
        cfg: QualityConfig | None = None) -> QualitySummary:
    """The quality step; `cfg` None keeps the thresholds the workspace has (a person's, or the defaults)."""
    manifest = quality(ws, cfg, progress=progress)
    shown = [*FLAG_COLUMNS, *(c for c in (*BOX_FLAG_COLUMNS, "no_boxes", "many_boxes") if c in manifest.columns)]
    return QualitySummary({f: int(manifest[f].sum()) for f in shown}, ws.manifest_file, ws.quality_file)
