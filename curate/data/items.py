"""Items: the rows of the manifest. An item is a still image, a video file, a frame of a video, or an object
(a box of an image or frame, from annotations). DESIGN.md section 7.

Images keep the manifest's original columns; the item columns are additive, so a workspace written before
items existed (no `kind` column) holds images only and keeps opening. Objects and frames are decoded from
their parent on demand (a crop, a seek): `curate.data.sources` turns a row into what to decode.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("image", "video", "frame", "object")
EMBEDDED_KINDS = ("image", "frame", "object")  # a video is a parent, never embedded itself
ITEM_DTYPES = {"kind": "string", "parent": "Int64", "x0": "float64", "y0": "float64", "x1": "float64",
               "y1": "float64", "time_ms": "Int64", "annotation": "string"}
ITEM_COLUMNS = list(ITEM_DTYPES)

# A box as the annotation readers give it and the writers take it: pixels of the image as decoded
# (EXIF orientation applied), `image` the image's manifest path, `annotation` where the box came from
# ("file#its own id there"), `problem` None for a usable box or the reason it is not.
BOX_COLUMNS = ["image", "x0", "y0", "x1", "y1", "label", "annotation", "iscrowd", "problem"]


def kinds(manifest: pd.DataFrame) -> np.ndarray:
    """(N,) object array of each row's kind ("image" for a workspace without a `kind` column)."""
    if "kind" not in manifest.columns:
        return np.full(len(manifest), "image", dtype=object)
    return manifest["kind"].fillna("image").astype(object).to_numpy()


def with_item_columns(manifest: pd.DataFrame) -> pd.DataFrame:
    """`manifest` with every item column present (rows without one are images)."""
    out = manifest.copy()
    for col, dtype in ITEM_DTYPES.items():
        if col not in out.columns:
            empty = "image" if col == "kind" else (np.nan if dtype == "float64" else pd.NA)
            out[col] = pd.Series(empty, index=out.index, dtype=dtype)
        else:
            out[col] = out[col].astype(dtype)
    out["kind"] = out["kind"].fillna("image")
    return out


def has_items(manifest: pd.DataFrame) -> bool:
    """True when the manifest holds anything but whole images."""
    return bool((kinds(manifest) != "image").any())


def kind_mask(manifest: pd.DataFrame, kind: str | None) -> np.ndarray:
    """(N,) True for rows of `kind` (None: every embedded kind)."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    found = kinds(manifest)
    return np.isin(found, EMBEDDED_KINDS) if kind is None else found == kind


def default_kind(manifest: pd.DataFrame) -> str:
    """The kind a command acts on when none is asked for: images, or frames when the workspace holds
    no still image but frames (a folder of videos)."""
    found = kinds(manifest)
    if not (found == "image").any() and (found == "frame").any():
        return "frame"
    return "image"


def present_kinds(manifest: pd.DataFrame) -> list[str]:
    """The embedded kinds this manifest holds, in KINDS order."""
    found = set(kinds(manifest).tolist())
    return [k for k in EMBEDDED_KINDS if k in found]


def merge_derived(manifest: pd.DataFrame, rows: pd.DataFrame, kind: str, parents: np.ndarray | None = None
                  ) -> tuple[pd.DataFrame, dict]:
    """The manifest with its `kind` items (objects or frames) replaced by `rows`, ids kept.

    `rows` holds the items found now, each with a `key` column that names it for good (an object: its
    `annotation`; a frame: "parent id@time_ms"). A key seen before keeps its id; a new key gets the next
    id after the largest ever used; an item of `kind` whose key is gone keeps its row with status
    `removed`, like a vanished file. `parents` (ids) limits that to the items of those parents (the
    others were not looked at and stay as they are). Returns (manifest, counts of added / changed /
    removed / kept).
    """
    manifest = with_item_columns(manifest)
    mine = manifest["kind"].to_numpy() == kind
    if parents is not None:
        mine &= manifest["parent"].isin(parents).to_numpy()
    old = manifest[mine]
    old_keys = _keys(old, kind)
    position = dict(zip(old_keys, old["id"].to_numpy()))
    next_id = int(manifest["id"].max()) + 1 if len(manifest) else 0
    ids = []
    for key in rows["key"]:
        found = position.get(key)
        if found is None:
            found, next_id = next_id, next_id + 1
        ids.append(int(found))
    fresh = rows.drop(columns="key").assign(id=np.asarray(ids, dtype=np.int64), kind=kind)
    seen = set(rows["key"])
    vanished = np.array([k not in seen for k in old_keys], dtype=bool)
    gone = old[vanished].assign(status="removed")
    before = old.set_index("id")
    changed = sum(1 for i, s in zip(fresh["id"], fresh["sha1"]) if i in before.index and
                  (before.at[i, "sha1"] != s or before.at[i, "status"] != "ok"))
    counts = {"added": int(sum(i not in before.index for i in fresh["id"])), "changed": int(changed),
              "removed": int((old[vanished]["status"] != "removed").sum()),
              "total": int(len(fresh))}
    rest = manifest[~mine]
    out = pd.concat([rest, gone, fresh.reindex(columns=manifest.columns)], ignore_index=True)
    out = out.sort_values("id").reset_index(drop=True)
    for col, dtype in manifest.dtypes.items():
        try:
            out[col] = out[col].astype(dtype)
        except (TypeError, ValueError):
            pass
    return out, counts


def _keys(items: pd.DataFrame, kind: str) -> list[str]:
    if kind == "object":
        return items["annotation"].astype(str).tolist()
    return [frame_key(p, t) for p, t in zip(items["parent"], items["time_ms"])]


def frame_key(parent: int, time_ms: int) -> str:
    return f"{int(parent)}@{int(time_ms)}"


def resolve_kind(manifest: pd.DataFrame, kind: str | None) -> str:
    """The kind a command acts on: the one asked for, else `default_kind`."""
    if kind is None:
        return default_kind(manifest)
    if kind not in EMBEDDED_KINDS:
        raise ValueError(f"--kind must be one of {', '.join(EMBEDDED_KINDS)}, not {kind!r}")
    return kind


def of_kind(manifest: pd.DataFrame, kind: str | None) -> np.ndarray:
    """(N,) True for the rows of the kind a command acts on (`resolve_kind`)."""
    return kinds(manifest) == resolve_kind(manifest, kind)


def video_frames(manifest: pd.DataFrame, video_id: int) -> np.ndarray:
    """(F,) ids of the frame rows of video `video_id` (removed ones left out), in time order."""
    if "parent" not in manifest.columns:
        return np.empty(0, np.int64)
    parent = manifest["parent"].to_numpy(dtype=float, na_value=np.nan)
    rows = manifest[(kinds(manifest) == "frame") & (parent == int(video_id))
                    & (manifest["status"].astype(str) != "removed").to_numpy()]
    rows = rows.sort_values(["time_ms", "id"], kind="stable")
    return rows["id"].to_numpy(np.int64)
