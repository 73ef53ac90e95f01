"""Metadata filters: which images a selection (or an app view) may draw from."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


# flags that are not quality checks -> the command that computes them (read from `image_table`)
FLAG_COMMANDS = {"outlier": "curate scores", "duplicate": "curate dedup", "label_issue": "curate label-issues"}


@dataclass
class Filters:
    labels: list[str] = field(default_factory=list)  # keep only these labels (empty: all)
    skip_flags: list[str] = field(default_factory=list)  # drop images with any of these flags (quality, label_issue...)
    min_side: int | None = None  # drop images whose shorter side is smaller (px)
    max_side: int | None = None  # drop images whose longer side is larger (px)
    tags: list[str] = field(default_factory=list)  # keep only images with one of these tags (empty: all)
    skip_tags: list[str] = field(default_factory=list)  # drop images with any of these tags
    where: str | None = None  # a filter expression over the columns (curate.data.where)


def filter_mask(manifest: pd.DataFrame, f: Filters, tags: pd.DataFrame | None = None) -> np.ndarray:
    """(N,) bool: readable rows that pass every filter. `manifest` may be `image_table`'s, which adds
    the outlier, duplicate and label_issue flags. A flag the table lacks is an error, not a silent
    pass (the message names the command that computes it)."""
    keep = (manifest["status"] == "ok").to_numpy()
    if f.where:
        from curate.data.where import where_mask

        keep &= where_mask(manifest, f.where)
    if f.labels:
        keep &= manifest["label"].isin(f.labels).to_numpy()
    for flag in f.skip_flags:
        if flag not in manifest.columns:
            raise ValueError(f"no flag {flag!r} on the images: run `{FLAG_COMMANDS.get(flag, 'curate quality')}` first")
        keep &= ~manifest[flag].fillna(False).to_numpy(bool)
    short = np.minimum(manifest["width"].to_numpy(float), manifest["height"].to_numpy(float))
    long = np.maximum(manifest["width"].to_numpy(float), manifest["height"].to_numpy(float))
    if f.min_side is not None:
        keep &= short >= f.min_side
    if f.max_side is not None:
        keep &= long <= f.max_side
    if f.tags or f.skip_tags:
        tags = tags if tags is not None else pd.DataFrame({"id": [], "tag": []})
        ids = manifest["id"].to_numpy()
        if f.tags:
            keep &= np.isin(ids, tags.loc[tags["tag"].isin(f.tags), "id"].to_numpy())
        if f.skip_tags:
            keep &= ~np.isin(ids, tags.loc[tags["tag"].isin(f.skip_tags), "id"].to_numpy())
    return keep
