"""Scan a folder into the manifest: new, changed and removed files, ids assigned once and never reused."""
from __future__ import annotations

import hashlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from curate.data.images import ImageError, image_size, is_image_path, load_rgb
from curate.data.manifest import MANIFEST_COLUMNS, empty_manifest
from curate.progress import Progress, report

log = logging.getLogger(__name__)

VERIFY_SIDE = 256  # decode at most this size to prove a file is readable (JPEG draft keeps it cheap)


@dataclass(frozen=True)
class ScanSummary:
    total: int
    ok: int
    added: int
    changed: int
    removed: int
    skipped: int

    def line(self) -> str:
        return (f"{self.total} files: {self.ok} ok, {self.skipped} skipped, "
                f"{self.added} new, {self.changed} changed, {self.removed} removed")


def list_images(root: Path) -> list[Path]:
    """Image files under root (recursive, sorted, hidden files and folders ignored)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath, f) for f in sorted(filenames) if is_image_path(Path(f)))
    return found


def label_of(rel: Path) -> str | None:
    """The immediate class sub-folder of a file, or None for a file at the root."""
    return rel.parent.name if rel.parent != Path(".") else None


def inspect_file(path: Path) -> dict:
    """bytes, sha1, width, height and status of one file; never raises."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return {"bytes": 0, "sha1": None, "width": 0, "height": 0, "status": f"unreadable: {err.strerror or err}"}
    row = {"bytes": len(data), "sha1": hashlib.sha1(data).hexdigest(), "width": 0, "height": 0}
    if not data:
        return {**row, "status": "empty file"}
    try:
        load_rgb(io.BytesIO(data), max_side=VERIFY_SIDE)
        row["width"], row["height"] = image_size(io.BytesIO(data))
        row["status"] = "ok"
    except ImageError as err:
        row["status"] = str(err)
    return row


def scan_folder(root: str | Path, previous: pd.DataFrame | None = None, workers: int = 4,
                progress: Progress | None = None) -> tuple[pd.DataFrame, ScanSummary]:
    """Build or refresh a manifest for `root`.

    Unchanged files (same size and mtime) are not re-read. Ids of known paths are kept; new paths
    get fresh ids after the largest ever used; vanished paths keep their row with status `removed`.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (pass a folder of images)")
    previous = empty_manifest() if previous is None else previous
    known = {p: i for i, p in enumerate(previous["path"])}
    files = list_images(root)

    rows, todo = [], []
    for path in files:
        rel = path.relative_to(root).as_posix()
        stat = path.stat()
        i = known.get(rel)
        old = previous.iloc[i] if i is not None else None
        if old is not None and old["bytes"] == stat.st_size and old["mtime"] == stat.st_mtime_ns and old["status"] != "removed":
            rows.append(old.to_dict())
        else:
            todo.append((path, rel, stat.st_mtime_ns, None if old is None else int(old["id"])))

    next_id = int(previous["id"].max()) + 1 if len(previous) else 0
    added = changed = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow and hashlib release the GIL
        for n, ((path, rel, mtime, old_id), info) in enumerate(zip(todo, pool.map(inspect_file, (t[0] for t in todo)))):
            if old_id is None:
                old_id, next_id, added = next_id, next_id + 1, added + 1
            else:
                changed += 1
            if info["status"] != "ok":
                log.warning("skipped %s: %s", rel, info["status"])
            rows.append({"id": old_id, "path": rel, "label": label_of(Path(rel)), "mtime": mtime, **info})
            report(progress, n + 1, len(todo), stage="scan", unit="file")

    seen = {r["path"] for r in rows}
    removed = 0
    for old in previous.itertuples(index=False):
        if old.path not in seen:
            row = old._asdict()
            removed += row["status"] != "removed"
            rows.append({**row, "status": "removed"})

    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS) if rows else empty_manifest()
    manifest = manifest.sort_values("id").reset_index(drop=True).astype(empty_manifest().dtypes.to_dict())
    ok = int((manifest["status"] == "ok").sum())
    skipped = int((~manifest["status"].isin(["ok", "removed"])).sum())
    summary = ScanSummary(total=len(files), ok=ok, added=added, changed=changed, removed=removed, skipped=skipped)
    return manifest, summary
