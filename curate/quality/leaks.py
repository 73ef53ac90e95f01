"""Duplicates across splits: evaluation items with a copy in the training split (FiftyOne's "leaky splits";
ciFAIR found about 3% of CIFAR-10's test images in its training split). A leaked test item inflates every
score measured on the test split, so it is the first duplicate to remove.

Pure functions over the duplicate groups (`duplicates.parquet`: exact and near copies, at the calibrated
precision) and a split per item.
"""
from __future__ import annotations

from pathlib import PurePosixPath

import numpy as np
import pandas as pd

SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test", "val": "val",
               "valid": "val", "validation": "val", "dev": "val"}


def split_from_path(path: str) -> str | None:
    """The split a path's folders name (`data/train/cat/1.jpg` -> "train"), the first such folder from the
    root; None when no folder names one."""
    for part in PurePosixPath(str(path)).parts[:-1]:
        found = SPLIT_NAMES.get(part.lower())
        if found:
            return found
    return None


def splits_of(manifest: pd.DataFrame, column: str = "split") -> np.ndarray:
    """(N,) object array: the manifest's `column` where it has one, else the split its path names."""
    if column in manifest.columns:
        return manifest[column].astype(object).where(manifest[column].notna(), None).to_numpy()
    if column != "split":
        raise ValueError(f"the manifest has no column {column!r} to split by (it has {', '.join(manifest.columns)})")
    return np.array([split_from_path(p) for p in manifest["path"].astype(str)], dtype=object)


def leaks(groups: pd.DataFrame, splits: np.ndarray, reference: str = "train") -> pd.DataFrame:
    """Items of any other split that share a duplicate group with an item of `reference`: columns id, split,
    copy_of (the group's first `reference` member), group, kind (exact or near), sorted by id."""
    if not len(groups):
        return pd.DataFrame(columns=["id", "split", "copy_of", "group", "kind"])
    g = groups.assign(split=splits[groups["id"].to_numpy()])
    ref = g[g["split"] == reference].groupby("group")["id"].min()
    other = g[g["split"].notna() & (g["split"] != reference) & g["group"].isin(ref.index)]
    return pd.DataFrame({"id": other["id"].to_numpy(), "split": other["split"].to_numpy(),
                         "copy_of": ref.reindex(other["group"]).to_numpy(), "group": other["group"].to_numpy(),
                         "kind": other["kind"].to_numpy()}).sort_values("id", ignore_index=True)
