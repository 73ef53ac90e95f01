"""The Explore page's 2-D map as a plotly WebGL scatter (pure plotly, no streamlit).

One trace per colour group (a label, a cluster, a tag, in/out of a selection), or one trace coloured
by a continuous score; each trace remembers the manifest ids of its points so a lasso/box selection,
which plotly reports as (trace, point index), maps back to ids. Hover shows only the id, the group or
the score (no per-point text arrays), which keeps 50,000-point figures small. `keep` arguments are
(N,) bool masks of the images that pass the page's filters (None: all).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

MAX_GROUPS = 20  # more labels than this: the rarest are merged into "other" (a legend stays readable)
# More shown points than this: an even share is drawn and the lasso still takes all. A lasso sends its drawn points
# back to the server, which refuses client messages over 25 MB (server.maxWidgetStateSize): 50,000 points fit.
MAX_DRAWN = 50_000
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
    trace_ids: tuple[np.ndarray, ...]  # trace_ids[curve][point_index] -> manifest id (the points drawn)
    shown_ids: np.ndarray | None = None  # every id the view shows, drawn or not (None: all are drawn)
    xy: np.ndarray | None = None  # the (N, 2) map, to find undrawn points inside a lasso or box

    @property
    def shown(self) -> int:
        return len(self.shown_ids) if self.shown_ids is not None else sum(len(ids) for ids in self.trace_ids)

    @property
    def drawn(self) -> int:
        return sum(len(ids) for ids in self.trace_ids)

    def ids_of(self, points: list[dict]) -> list[int]:
        """Manifest ids of plotly selection points (dicts with curve_number and point_index)."""
        out = []
        for point in points:
            curve, index = point.get("curve_number"), point.get("point_index", point.get("point_number"))
            if curve is not None and index is not None and curve < len(self.trace_ids):
                if 0 <= index < len(self.trace_ids[curve]):
                    out.append(int(self.trace_ids[curve][index]))
        return list(dict.fromkeys(out))

    def ids_selected(self, selection: dict) -> list[int]:
        """Manifest ids a plotly selection (points, box, lasso) takes: on a thinned map, every shown
        image inside the box or lasso, not only the drawn ones."""
        ids = self.ids_of(selection.get("points", []))
        if self.shown_ids is None or self.drawn == self.shown:
            return ids
        inside = regions_contain(self.xy[self.shown_ids], selection.get("box", []), selection.get("lasso", []))
        return list(dict.fromkeys(ids + self.shown_ids[inside].tolist()))


def regions_contain(points: np.ndarray, boxes: list[dict], lassos: list[dict]) -> np.ndarray:
    """(M,) bool: points inside any box ({x: [x0, x1], y: [y0, y1]}) or lasso polygon ({x: [...], y: [...]})."""
    from matplotlib.path import Path

    inside = np.zeros(len(points), bool)
    for box in boxes:
        (x0, x1), (y0, y1) = sorted(box["x"][:2]), sorted(box["y"][:2])
        inside |= (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
    for lasso in lassos:
        if len(lasso.get("x", [])) >= 3:
            inside |= Path(np.column_stack([lasso["x"], lasso["y"]])).contains_points(points)
    return inside


def thinned(ids: np.ndarray, fraction: float) -> np.ndarray:
    """About `fraction` of `ids`, always the same ones for an id (a fixed hash), so points do not jump
    between views and every group keeps its share."""
    if fraction >= 1:
        return ids
    hashed = (ids.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)  # Knuth's multiplicative hash
    return ids[hashed < np.uint64(fraction * 2**32)]


def mapped_ids(xy: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Ids with a map position (rows without an embedding are NaN and left out) that `keep` allows."""
    mapped = np.isfinite(xy).all(axis=1)
    return np.flatnonzero(mapped if keep is None else mapped & keep)


def groups_by_label(labels: pd.Series, xy: np.ndarray, keep: np.ndarray | None = None) -> list[Group]:
    """One group per label, in name order; beyond MAX_GROUPS the rarest become "other"."""
    ids = mapped_ids(xy, keep)
    names = labels.iloc[ids].astype(object).where(labels.iloc[ids].notna(), "(no label)").to_numpy()
    counts = pd.Series(names).value_counts()
    kept = list(counts.index[:MAX_GROUPS - 1] if len(counts) > MAX_GROUPS else counts.index)
    groups = [Group(str(name), ids[names == name], PALETTE[i % len(PALETTE)]) for i, name in enumerate(sorted(kept))]
    rest = ~np.isin(names, kept)
    if rest.any():
        groups.append(Group("other", ids[rest], OTHER_COLOUR))
    return groups


def groups_by_membership(members: np.ndarray, xy: np.ndarray, name: str, keep: np.ndarray | None = None,
                         rest: str = "other") -> list[Group]:
    """Two groups: everything else (grey, drawn first) and the members of `name` (on top)."""
    ids = mapped_ids(xy, keep)
    inside = np.isin(ids, members)
    return [Group(rest, ids[~inside], OTHER_COLOUR), Group(name, ids[inside], "#d62728")]


def groups_by_category(values: pd.Series, xy: np.ndarray, keep: np.ndarray | None = None,
                       missing: str = "none") -> list[Group]:
    """One group per distinct value (row i = id i), largest first; missing or empty values form a grey
    `missing` group drawn first (underneath), and beyond MAX_GROUPS the rarest values become "other"."""
    ids = mapped_ids(xy, keep)
    names = values.iloc[ids].astype(object)
    absent = (names.isna() | (names.astype(str) == "")).to_numpy()
    names = names.astype(str).to_numpy()
    counts = pd.Series(names[~absent]).value_counts(sort=False)
    counts = counts.iloc[np.lexsort((counts.index.to_numpy(str), -counts.to_numpy()))]  # size, then name
    kept = list(counts.index[:MAX_GROUPS - 1] if len(counts) > MAX_GROUPS else counts.index)
    groups = [Group(missing, ids[absent], OTHER_COLOUR)] if absent.any() else []
    groups += [Group(name, ids[~absent & (names == name)], PALETTE[i % len(PALETTE)]) for i, name in enumerate(kept)]
    rest = ~absent & ~np.isin(names, kept)
    if rest.any():
        groups.append(Group("other", ids[rest], "#8c8c8c"))
    return groups


def marker_size(n_points: int) -> float:
    """Smaller dots for denser maps so clusters stay visible."""
    return 7.0 if n_points <= 3_000 else 5.0 if n_points <= 20_000 else 3.5


def scatter(xy: np.ndarray, groups: list[Group], max_drawn: int = MAX_DRAWN) -> MapChart:
    """A Scattergl figure with one trace per group, lasso as the default drag mode; beyond `max_drawn`
    points each group is thinned to the same share (its legend still counts all its images)."""
    shown = sum(len(g.ids) for g in groups)
    fraction = max_drawn / shown if shown > max_drawn else 1.0
    drawn = [thinned(g.ids, fraction) for g in groups]
    size = marker_size(sum(len(ids) for ids in drawn))
    traces = [go.Scattergl(x=xy[ids, 0], y=xy[ids, 1], mode="markers", name=f"{g.name} ({len(g.ids):,})",
                           customdata=ids, marker={"size": size, "color": g.colour, "opacity": 0.75},
                           hovertemplate="id %{customdata}<extra>%{fullData.name}</extra>")
              for g, ids in zip(groups, drawn)]
    every = np.concatenate([g.ids for g in groups]) if fraction < 1 else None
    return MapChart(_layout(go.Figure(traces)), tuple(drawn), every, xy if fraction < 1 else None)


def _layout(figure: go.Figure) -> go.Figure:
    figure.update_layout(dragmode="lasso", height=620, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         legend={"itemsizing": "constant"},
                         xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
                         uirevision="map", plot_bgcolor="white")
    return figure


def continuous(xy: np.ndarray, values: np.ndarray, name: str, keep: np.ndarray | None = None,
               max_drawn: int = MAX_DRAWN) -> MapChart:
    """One trace coloured by `values` ((N,) float, row i = id i; NaN rows are left out) on a colour bar,
    thinned beyond `max_drawn` points as `scatter` does."""
    every = mapped_ids(xy, keep)
    every = every[np.isfinite(values[every])]
    v = values[every]
    low, high = np.percentile(v, [1, 99]) if len(v) else (0.0, 1.0)  # a few extreme values keep the scale readable
    ids = thinned(every, max_drawn / len(every) if len(every) > max_drawn else 1.0)
    v = values[ids]
    trace = go.Scattergl(x=xy[ids, 0], y=xy[ids, 1], mode="markers", name=f"{name} ({len(every):,})",
                         customdata=ids,
                         marker={"size": marker_size(len(ids)), "color": v, "colorscale": "Viridis", "opacity": 0.8,
                                 "cmin": float(low), "cmax": float(max(high, low + 1e-6)),
                                 "colorbar": {"title": {"text": name}, "thickness": 12}, "showscale": True},
                         hovertemplate=f"id %{{customdata}}<br>{name} %{{marker.color:.3f}}<extra></extra>")
    thin = len(ids) < len(every)
    return MapChart(_layout(go.Figure([trace])), (ids,), every if thin else None, xy if thin else None)
