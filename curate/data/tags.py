"""Tags: user labels on images (`to_label`, `bad`, ...), kept in the workspace's tags.parquet
(one row per id and tag) and usable as filters and exclusions everywhere."""
from __future__ import annotations

import numpy as np
import pandas as pd

from curate import storage
from curate.locks import locked
from curate.workspace import Workspace, safe_name

COLUMNS = {"id": "int64", "tag": "string"}


def read_tags(ws: Workspace) -> pd.DataFrame:
    if not ws.tags_file.exists():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})
    return pd.read_parquet(ws.tags_file).astype(COLUMNS)


def tag_names(ws: Workspace) -> list[str]:
    return sorted(read_tags(ws)["tag"].unique().tolist())


def ids_with_tag(ws: Workspace, tag: str, tags: pd.DataFrame | None = None) -> np.ndarray:
    tags = read_tags(ws) if tags is None else tags
    return np.sort(tags.loc[tags["tag"] == tag, "id"].to_numpy(np.int64))


def add_tag(ws: Workspace, ids, tag: str) -> int:
    """Tag `ids`; returns how many were newly tagged."""
    tag = safe_name(tag)
    with locked(ws.locks_dir, "tags", what="another tagging"):  # read-modify-write: one tagger at a time
        tags = read_tags(ws)
        have = set(ids_with_tag(ws, tag, tags).tolist())
        new = sorted({int(i) for i in ids} - have)
        if new:
            added = pd.DataFrame({"id": new, "tag": tag}).astype(COLUMNS)
            storage.write_parquet(ws.tags_file, pd.concat([tags, added], ignore_index=True))
    return len(new)


def remove_tag(ws: Workspace, ids, tag: str) -> int:
    """Untag `ids` (all images with the tag if ids is None); returns how many were untagged."""
    with locked(ws.locks_dir, "tags", what="another tagging"):
        tags = read_tags(ws)
        hit = (tags["tag"] == tag).to_numpy()
        if ids is not None:
            hit &= tags["id"].isin([int(i) for i in ids]).to_numpy()
        if hit.any():
            storage.write_parquet(ws.tags_file, tags[~hit].reset_index(drop=True))
    return int(hit.sum())
