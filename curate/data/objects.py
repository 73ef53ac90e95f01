"""Object items from annotations: each box of a COCO, YOLO or VOC file becomes a manifest row.

The row's `parent` is its image's id, `path` its image's path (so every reader checks it against the
image folder as it does images), the box in pixels, `label` the class name and `annotation` where the
box came from. Its `sha1` is derived from the parent's content and the box, so a changed image or a
moved box makes its decoded pixels and vector stale, like a changed file. A bad box keeps its row with
the reason as `status`; a problem with no image to attach to (a label file without an image, a COCO
annotation of an unknown image id) is reported, not stored.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from curate.data.items import kinds, merge_derived


def object_rows(manifest: pd.DataFrame, boxes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows for `merge_derived`, problems without an image: columns annotation, problem) from the box table
    (curate.data.items.BOX_COLUMNS)."""
    images = manifest[kinds(manifest) == "image"]
    by_path = pd.Series(images["id"].to_numpy(), index=images["path"].astype(str))
    by_path = by_path[~by_path.index.duplicated()]
    parent = boxes["image"].map(by_path)
    orphan = parent.isna()
    lost = boxes[orphan]
    orphans = pd.DataFrame({"annotation": lost["annotation"].astype(str),
                            "problem": lost["problem"].fillna("no image for this annotation").astype(str)})
    found = boxes[~orphan]
    pid = parent[~orphan].astype(np.int64).to_numpy()
    by_id = manifest.set_index("id")
    parent_sha = by_id["sha1"].reindex(pid).astype(object).to_numpy()
    parent_status = by_id["status"].reindex(pid).astype(str).to_numpy()
    coords = found[["x0", "y0", "x1", "y1"]].to_numpy(np.float64)
    status = np.where(found["problem"].isna(), np.where(parent_status == "ok", "ok", "image " + parent_status),
                      "annotation: " + found["problem"].fillna("").astype(str))
    rows = pd.DataFrame({
        "key": found["annotation"].astype(str).to_numpy(),
        "path": found["image"].astype(str).to_numpy(),
        "label": found["label"].astype(object).to_numpy(),
        "width": np.maximum(np.rint(coords[:, 2] - coords[:, 0]), 0).astype(np.int64),
        "height": np.maximum(np.rint(coords[:, 3] - coords[:, 1]), 0).astype(np.int64),
        "bytes": 0,
        "sha1": [_box_sha(s, c) for s, c in zip(parent_sha, coords)],
        "status": status,
        "mtime": by_id["mtime"].reindex(pid).to_numpy(),
        "parent": pid,
        "x0": coords[:, 0], "y0": coords[:, 1], "x1": coords[:, 2], "y1": coords[:, 3],
        "annotation": found["annotation"].astype(str).to_numpy(),
    })
    return rows, orphans


def merge_objects(manifest: pd.DataFrame, boxes: pd.DataFrame) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The manifest with the objects of `boxes` (ids kept by annotation key); (manifest, counts, orphans)."""
    rows, orphans = object_rows(manifest, boxes)
    merged, counts = merge_derived(manifest, rows, "object")
    return merged, counts, orphans


def _box_sha(parent_sha, coords: np.ndarray) -> str:
    text = f"{parent_sha}|{coords[0]:.3f},{coords[1]:.3f},{coords[2]:.3f},{coords[3]:.3f}"
    return hashlib.sha1(text.encode()).hexdigest()
