"""The Explore page's 2-D map as a plotly WebGL scatter (pure plotly, no streamlit).

One trace per colour group (a label, or in/out of a selection); each trace remembers the manifest
ids of its points so a lasso/box selection, which plotly reports as (trace, point index), maps back
to ids. Hover shows only the id and the group (no per-point text arrays), which keeps 50,000-point
figures small.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

MAX_GROUPS = 20  # more labels than this: the rarest are merged into "other" (a legend stays readable)
PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Set2
OTHER_COLOUR = "#c8c8c8"


@dataclass(frozen=True)
class Group:
    name: str
    ids: np.ndarray  # (k,) int64 manifest ids
    colour: str


@dataclass(frozen=True)
class MapChart:
    figure: go.Figure
    trace_ids: tuple[np.ndarray, ...]  # trace_ids[curve][point_index] -> manifest id

    def ids_of(self, points: list[dict]) -> list[int]:
        """Manifest ids of plotly selection points (dicts with curve_number and point_index)."""
        out = []
        for point in points:
            curve, index = point.get("curve_number"), point.get("point_index", point.get("point_number"))
            if curve is not None and index is not None and curve < len(self.trace_ids):
                if 0 <= index < len(self.trace_ids[curve]):
                    out.append(int(self.trace_ids[curve][index]))
        return list(dict.fromkeys(out))


def mapped_ids(xy: np.ndarray) -> np.ndarray:
    """Ids with a map position (rows without an embedding are NaN and left out)."""
    return np.flatnonzero(np.isfinite(xy).all(axis=1))


def groups_by_label(labels: pd.Series, xy: np.ndarray) -> list[Group]:
    """One group per label, largest first; beyond MAX_GROUPS the rest become "other"."""
    ids = mapped_ids(xy)
    names = labels.iloc[ids].astype(object).where(labels.iloc[ids].notna(), "(no label)").to_numpy()
    counts = pd.Series(names).value_counts()
    kept = list(counts.index[:MAX_GROUPS - 1] if len(counts) > MAX_GROUPS else counts.index)
    groups = [Group(str(name), ids[names == name], PALETTE[i % len(PALETTE)]) for i, name in enumerate(sorted(kept))]
    rest = ~np.isin(names, kept)
    if rest.any():
        groups.append(Group("other", ids[rest], OTHER_COLOUR))
    return groups


def groups_by_membership(members: np.ndarray, xy: np.ndarray, name: str) -> list[Group]:
    """Two groups: everything else (grey, drawn first) and the members of `name` (on top)."""
    ids = mapped_ids(xy)
    inside = np.isin(ids, members)
    return [Group("other", ids[~inside], OTHER_COLOUR), Group(name, ids[inside], "#d62728")]


def marker_size(n_points: int) -> float:
    """Smaller dots for denser maps so clusters stay visible."""
    return 7.0 if n_points <= 3_000 else 5.0 if n_points <= 20_000 else 3.5


def scatter(xy: np.ndarray, groups: list[Group]) -> MapChart:
    """A Scattergl figure with one trace per group, lasso as the default drag mode."""
    size = marker_size(sum(len(g.ids) for g in groups))
    traces = [go.Scattergl(x=xy[g.ids, 0], y=xy[g.ids, 1], mode="markers", name=f"{g.name} ({len(g.ids):,})",
                           customdata=g.ids, marker={"size": size, "color": g.colour, "opacity": 0.75},
                           hovertemplate="id %{customdata}<extra>%{fullData.name}</extra>")
              for g in groups]
    figure = go.Figure(traces)
    figure.update_layout(dragmode="lasso", height=620, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         legend={"itemsizing": "constant"},
                         xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
                         uirevision="map", plot_bgcolor="white")
    return MapChart(figure, tuple(g.ids for g in groups))
