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
            out[col] = pd.Series("image" if col == "kind" else pd.NA, index=out.index, dtype=dtype)
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
