"""`curate dedup`: exact (sha1) and near (embedding) duplicate groups -> duplicates.parquet."""
from __future__ import annotations

import numpy as np
import pandas as pd

from curate import storage
from curate.data.manifest import ok_mask
from curate.quality import calibrated_threshold, exact_duplicates, groups_table, near_duplicates
from curate.workspace import Workspace, now


def dedup(ws: Workspace, threshold: float | None = None) -> pd.DataFrame:
    """Exact and near-duplicate groups; `threshold` (cosine) defaults to one calibrated on the data.

    Keepers are the largest images, ties going to the sharpest once `curate quality` has measured them.
    """
    calibrated = threshold is None
    manifest = ws.manifest()
    rows = np.flatnonzero(ok_mask(manifest))
    sub = manifest.iloc[rows]
    exact = exact_duplicates(sub["sha1"].astype(object).tolist())
    near = []
    if ws.embeddings_file.exists():
        vectors = np.asarray(ws.embeddings())[rows]
        threshold = calibrated_threshold(vectors) if threshold is None else threshold
        near = near_duplicates(vectors, threshold)
    pixels = (sub["width"] * sub["height"]).to_numpy()
    sharpness = sub["sharpness"].to_numpy(np.float64, na_value=np.nan) if "sharpness" in sub else None  # `curate quality`
    table = groups_table(exact, near, rows, pixels, sharpness)
    storage.write_parquet(ws.duplicates_file, table)
    storage.write_json(ws.sidecar(ws.duplicates_file), {"threshold": threshold, "calibrated": calibrated, "created": now(),
                                                        "groups": int(table["group"].nunique())})
    return table
