"""What the Explore map shows: which images (filters) and how they are coloured (pure: no streamlit).

A `MapView` is small, frozen and hashable, so the cached chart is keyed by it (plus the files'
modification times): moving a slider back, or another session asking for the same view, reuses
the figure instead of rebuilding it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate import storage
from curate.data.exif import EXIF_COLUMNS
from curate.data.items import kind_mask
from curate.quality.checks import FLAG_COLUMNS
from curate.select.filters import Filters, filter_mask
from curate.steps.map import map_method
from curate.steps.scores import SCORE_COLUMNS
from curate.ui import map_figure
from curate.workspace import Workspace

# colour options that need a column of `image_table` (and the step that writes it)
LABEL, CLUSTER, QUALITY, DUPLICATE, TAG, SELECTIONS, BASKET = (
    "label", "cluster", "quality", "duplicate", "tag", "selections", "basket")
CONTINUOUS = ("uniqueness", "typicality")  # scores drawn on a colour bar
COLUMN = "column:"  # colour by a manifest column (EXIF, --metadata): "column:camera_model"
RANGE_COLUMNS = CONTINUOUS  # scores the filters bound with a slider
# the maps Explore offers: "umap" is the saved main map (projection_umap.npy, named by the method that made it),
# "tsne" the saved t-SNE, "pca" the two main axes of the embeddings (computed by the app)
MAP_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}


@dataclass(frozen=True)
class MapView:
    projection: str = "umap"
    colour: str = LABEL  # one of the names above, a score column, "selection:NAME" or "column:NAME"
    clusters: int = 10  # k of the k-means colouring
    members: tuple[int, ...] = ()  # ids of the highlighted group (basket or one selection)
    member_name: str = ""
    labels: tuple[str, ...] = ()  # keep only these labels (empty: all)
    skip_flags: tuple[str, ...] = ()  # hide images with any of these flags (quality, outlier, duplicate)
    tags: tuple[str, ...] = ()  # keep only images with one of these tags
    skip_tags: tuple[str, ...] = ()  # hide images with any of these tags
    ranges: tuple[tuple[str, float, float], ...] = ()  # (score column, low, high): keep values inside
    kind: str | None = None  # show only items of this kind (image, object, frame); None: every embedded kind
    where: str | None = None  # the sidebar's filter expression (curate.data.where)


def map_choices(ws: Workspace) -> list[str]:
    """The maps Explore offers for `ws` (keys of MAP_LABELS), the saved main map first; t-SNE is offered before
    it exists (the page computes it), PCA once the embeddings exist and the main map is not already a PCA."""
    choices = [p for p, f in (("umap", ws.projection_file), ("tsne", ws.embeddings_file), ("pca", ws.embeddings_file))
               if f.exists()]
    if "umap" in choices and map_method(ws) == "pca":
        choices.remove("pca")
    return choices


def map_label(ws: Workspace, projection: str) -> str:
    """How Explore names the map `projection`: the main map by the method its sidecar says made it."""
    return MAP_LABELS[map_method(ws) if projection == "umap" else projection]


def quality_flags(table: pd.DataFrame) -> list[str]:
    """The quality-check flag columns the manifest has (none before `curate quality`)."""
    return [f for f in FLAG_COLUMNS if f in table.columns]


def hideable_flags(table: pd.DataFrame) -> list[str]:
    """Flags the filters can hide: quality flags, `outlier` (scores), `duplicate` (non-keepers) and
    `label_issue` (label issues not rejected)."""
    return quality_flags(table) + [f for f in ("outlier", "duplicate", "label_issue") if f in table.columns]


def has_scores(table: pd.DataFrame) -> bool:
    return all(c in table.columns for c in SCORE_COLUMNS)


def keep_mask(table: pd.DataFrame, view: MapView, tags: pd.DataFrame) -> np.ndarray:
    """(N,) bool: readable items of the view's kind that pass its filters (row i = id i)."""
    f = Filters(labels=list(view.labels), skip_flags=list(view.skip_flags), tags=list(view.tags),
                skip_tags=list(view.skip_tags), where=view.where)
    keep = filter_mask(table, f, tags) & kind_mask(table, view.kind)
    for column, low, high in view.ranges:
        values = table[column].to_numpy(np.float64, na_value=np.nan)
        keep &= (values >= low) & (values <= high)  # NaN (no score) fails both: hidden once a range is set
    return keep


def chart(table: pd.DataFrame, xy: np.ndarray, view: MapView, tags: pd.DataFrame,
          clusters: np.ndarray | None = None, selections: dict[str, np.ndarray] | None = None) -> map_figure.MapChart:
    """The map of `view`: `table` is `image_table` (row i = id i), `xy` the (N, 2) map, `clusters` the
    (N,) k-means cluster of each id (-1: none) when colouring by cluster, `selections` name -> ids.
    A rescan adds manifest rows before the map and clusters are redone: those images get no point yet."""
    xy = rows_for(xy, len(table), np.nan)
    clusters = None if clusters is None else rows_for(clusters, len(table), -1)
    keep = keep_mask(table, view, tags)
    colour = view.colour
    if colour in CONTINUOUS:
        return map_figure.continuous(xy, table[colour].to_numpy(np.float64, na_value=np.nan), colour, keep)
    if colour.startswith(COLUMN):
        return column_chart(table[colour[len(COLUMN):]], xy, keep)
    if colour == LABEL:
        groups = map_figure.groups_by_label(table["label"], xy, keep)
    elif colour == "outlier":
        groups = map_figure.groups_by_membership(np.flatnonzero(table["outlier"].to_numpy(bool)), xy, "outlier",
                                                 keep, rest="not an outlier")
    elif colour == CLUSTER:
        names = pd.Series(np.where(clusters >= 0, [f"cluster {c}" for c in clusters], None), dtype=object)
        groups = map_figure.groups_by_category(names, xy, keep, missing="no embedding")
    elif colour == QUALITY:
        groups = map_figure.groups_by_category(flag_names(table, quality_flags(table)), xy, keep, missing="no flag")
    elif colour == DUPLICATE:
        groups = map_figure.groups_by_category(duplicate_names(table), xy, keep, missing="no duplicate")
    elif colour == TAG:
        groups = map_figure.groups_by_category(table.get("tags", pd.Series("", index=table.index)), xy, keep,
                                               missing="untagged")
    elif colour == SELECTIONS:
        groups = map_figure.groups_by_category(joined_names(len(table), selections or {}), xy, keep,
                                               missing="in no selection")
    else:  # the basket or one selection
        groups = map_figure.groups_by_membership(np.asarray(view.members, np.int64), xy, view.member_name, keep)
    return map_figure.scatter(xy, groups)


def metadata_columns(ws: Workspace, table: pd.DataFrame) -> list[str]:
    """The EXIF and `--metadata` columns `table` holds (the team's own facts, to colour and facet by)."""
    joined = storage.read_json(ws.metadata_file).get("columns", []) if ws.metadata_file.exists() else []
    return [c for c in [*EXIF_COLUMNS, *joined] if c in table.columns]


def column_chart(values: pd.Series, xy: np.ndarray, keep: np.ndarray) -> map_figure.MapChart:
    """The map coloured by one column: numbers and times on a colour bar (times in years, 2024.5 = July 2024),
    anything else one colour per value (the legend counts each: the column's facet), missing values grey."""
    name = str(values.name)
    if pd.api.types.is_datetime64_any_dtype(values):
        when = pd.to_datetime(values)
        years = when.dt.year + (when.dt.dayofyear - 1) / 365.25
        return map_figure.continuous(xy, years.to_numpy(np.float64, na_value=np.nan), f"{name} (year)", keep)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return map_figure.continuous(xy, values.to_numpy(np.float64, na_value=np.nan), name, keep)
    return map_figure.scatter(xy, map_figure.groups_by_category(values, xy, keep, missing=f"no {name}"))


def rows_for(values: np.ndarray, n: int, missing) -> np.ndarray:
    """`values` (per id) cut or padded with `missing` to n rows: ids are never reused, so rows beyond
    the array's end are images added since it was computed."""
    if len(values) >= n:
        return values[:n]
    pad = np.full((n - len(values), *values.shape[1:]), missing, dtype=values.dtype)
    return np.concatenate([values, pad])


def flag_names(table: pd.DataFrame, flags: list[str]) -> pd.Series:
    """Each row's raised flags joined with "+" (None when it has none)."""
    return joined_names(len(table), {flag: np.flatnonzero(table[flag].fillna(False).to_numpy(bool))
                                     for flag in flags}, order=flags)


def duplicate_names(table: pd.DataFrame) -> pd.Series:
    """`group G` for images in a duplicate group, None for the rest."""
    if "duplicate_group" not in table.columns:
        return pd.Series(None, index=table.index, dtype=object)
    group = table["duplicate_group"]
    return pd.Series(np.where(group.notna(), "group " + group.astype("Int64").astype(str), None), index=table.index,
                     dtype=object)


def joined_names(n: int, members: dict[str, np.ndarray], order: list[str] | None = None) -> pd.Series:
    """For each of `n` ids, the names of the `members` sets holding it joined with "+" (None: none)."""
    out = np.full(n, "", dtype=object)
    for name in order or sorted(members):
        ids = np.asarray(members[name], np.int64)
        ids = ids[(ids >= 0) & (ids < n)]
        out[ids] = np.where(out[ids] == "", name, out[ids] + "+" + name)
    return pd.Series(np.where(out == "", None, out), dtype=object)


def score_bounds(table: pd.DataFrame, column: str) -> tuple[float, float] | None:
    """(low, high) of a score column rounded outwards to 2 decimals (slider ends), None if it has no values."""
    values = table[column].to_numpy(np.float64, na_value=np.nan) if column in table.columns else np.array([])
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    low, high = np.floor(values.min() * 100) / 100, np.ceil(values.max() * 100) / 100
    return float(low), float(max(high, low + 0.01))
