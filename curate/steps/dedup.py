"""`curate dedup`: exact (sha1) and near (embedding) duplicate groups -> duplicates.parquet."""
from __future__ import annotations

import numpy as np
import pandas as pd

from curate import storage
from curate.data.manifest import ok_mask
from curate.quality import exact_duplicates, groups_table, near_duplicates
from curate.workspace import Workspace, now

DEFAULT_THRESHOLD = 0.95


def dedup(ws: Workspace, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    manifest = ws.manifest()
    rows = np.flatnonzero(ok_mask(manifest))
    sub = manifest.iloc[rows]
    exact = exact_duplicates(sub["sha1"].astype(object).tolist())
    near = near_duplicates(np.asarray(ws.embeddings())[rows], threshold) if ws.embeddings_file.exists() else []
    pixels = (sub["width"] * sub["height"]).to_numpy()
    table = groups_table(exact, near, rows, pixels)
    storage.write_parquet(ws.duplicates_file, table)
    storage.write_json(ws.sidecar(ws.duplicates_file), {"threshold": threshold, "created": now(),
                                                        "groups": int(table["group"].nunique())})
    return table
