"""The manifest table: one row per image ever seen, row i has id i (ids are never reused)."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

MANIFEST_COLUMNS = ["id", "path", "label", "width", "height", "bytes", "sha1", "status", "mtime"]
_DTYPES = {"id": "int64", "path": "string", "label": "string", "width": "int64", "height": "int64",
           "bytes": "int64", "sha1": "string", "status": "string", "mtime": "int64"}


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})


def validate(manifest: pd.DataFrame) -> pd.DataFrame:
    """Check the invariant every array in a workspace relies on: row i is id i."""
    missing = set(MANIFEST_COLUMNS) - set(manifest.columns)
    if missing:
        raise ValueError(f"manifest lacks columns {sorted(missing)}: rebuild it with `curate scan`")
    if not np.array_equal(manifest["id"].to_numpy(), np.arange(len(manifest))):
        raise ValueError("manifest ids are not 0..N-1 in order: the workspace is damaged, rescan into a new one")
    return manifest


def ok_mask(manifest: pd.DataFrame) -> np.ndarray:
    """Boolean (N,) mask of rows whose item is present and readable and has pixels of its own: images,
    frames and objects (a video file is a parent of frames, never embedded itself; curate.data.items)."""
    ok = (manifest["status"] == "ok").to_numpy()
    if "kind" in manifest.columns:
        ok &= (manifest["kind"] != "video").fillna(True).to_numpy()
    return ok


def labels(manifest: pd.DataFrame) -> np.ndarray | None:
    """Labels as an object array (None where absent), or None if no image has a label."""
    lab = manifest["label"]
    if lab.isna().all():
        return None
    return lab.astype(object).where(lab.notna(), None).to_numpy()


def fingerprint(manifest: pd.DataFrame) -> str:
    """Content hash of the usable images (ids and file hashes): changes when any image does.

    Rows that are not `ok` do not count, so adding an unreadable file keeps the fingerprint:
    anything sized by the manifest (the decode cache) must also check its length.
    """
    ok = manifest[manifest["status"] == "ok"]
    h = hashlib.sha1()
    for i, sha in zip(ok["id"].to_numpy(), ok["sha1"].astype(str)):
        h.update(f"{i}:{sha};".encode())
    return h.hexdigest()[:16]


def content_keys(manifest: pd.DataFrame) -> np.ndarray:
    """(N,) uint64 per row: the first 16 hex digits of its sha1 (0 where there is none), so derived data
    (decoded pixels, vectors) can tell which rows still show the content they were computed from."""
    return np.array([int(h[:16], 16) if isinstance(h, str) and len(h) >= 16 else 0 for h in manifest["sha1"]],
                    dtype=np.uint64)
