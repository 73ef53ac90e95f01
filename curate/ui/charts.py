"""Small plotly figures of the Search, Select and quality views (pure plotly, no streamlit)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from curate.evaluate.health import FIGURES, LOWER_IS_BETTER

if TYPE_CHECKING:
    import pandas as pd

SELECTED_COLOUR, POOL_COLOUR, CUT_COLOUR = "#d62728", "#9da5b0", "#1f77b4"
MAX_BARS = 30  # categories drawn in a histogram; the rest are summed into "other"


def score_histogram(scores: np.ndarray, cutoff: float | None = None, title: str = "similarity") -> go.Figure:
    """Histogram of result scores, with the cut-off as a vertical line and the kept side shaded."""
    scores = np.asarray(scores, dtype=np.float64)
    figure = go.Figure(go.Histogram(x=scores, nbinsx=min(60, max(10, len(scores) // 10)), marker_color=POOL_COLOUR,
                                    hovertemplate=f"{title} %{{x}}<br>%{{y}} images<extra></extra>"))
    if cutoff is not None and len(scores):
        kept = int((scores >= cutoff).sum())
        figure.add_vrect(x0=cutoff, x1=float(scores.max()), fillcolor=CUT_COLOUR, opacity=0.12, line_width=0)
        figure.add_vline(x=cutoff, line_color=CUT_COLOUR, line_width=2,
                         annotation_text=f"≥ {cutoff:.3f}: {kept:,}", annotation_position="top left")
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10}, bargap=0.05,
                         xaxis_title=title, yaxis_title="images", showlegend=False)
    return figure


def share_bars(columns: Mapping[str, Mapping[str, int]], title: str = "") -> go.Figure:
    """Grouped bars of each column's share per category: {"selected": {cat: count}, "pool": {...}, ...}.

    Shares (not counts), so a selection of 100 compares with a pool of 50,000; categories in the
    order of the last column's counts (the pool), the rarest beyond MAX_BARS summed into "other".
    """
    names = list(columns)
    reference = columns[names[-1]] if names else {}
    order = sorted(set().union(*[set(c) for c in columns.values()]), key=lambda k: (-reference.get(k, 0), k))
    shown, rest = order[:MAX_BARS], order[MAX_BARS:]
    colours = {"selected": SELECTED_COLOUR, "pool": POOL_COLOUR}
    figure = go.Figure()
    x = [str(k) for k in shown] + (["other"] if rest else [])
    for i, name in enumerate(names):
        counts = columns[name]
        bars = np.array([counts.get(k, 0) for k in shown] + ([sum(counts.get(k, 0) for k in rest)] if rest else []))
        figure.add_bar(x=x, y=bars / max(1, sum(counts.values())), name=name, customdata=bars,
                       marker_color=colours.get(name, _palette(i)),
                       hovertemplate="%{x}: %{y:.1%} (%{customdata})<extra>" + name + "</extra>")
    figure.update_layout(barmode="group", height=280, margin={"l": 10, "r": 10, "t": 40, "b": 10}, title=title,
                         yaxis_tickformat=".0%", legend={"orientation": "h", "y": 1.15})
    return figure


def _palette(i: int) -> str:
    return ("#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")[i % 4]


def flag_bars(counts: Mapping[str, int], saved: Mapping[str, int] | None = None,
              labels: Sequence[str] | None = None) -> go.Figure:
    """Images flagged per quality check at the current thresholds (and, greyed, at the saved ones)."""
    names = list(labels or counts)
    figure = go.Figure()
    if saved is not None:
        figure.add_bar(x=names, y=[saved.get(n, 0) for n in names], name="saved thresholds", marker_color=POOL_COLOUR)
    figure.add_bar(x=names, y=[counts.get(n, 0) for n in names], name="these thresholds", marker_color=SELECTED_COLOUR)
    figure.update_layout(barmode="group", height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         yaxis_title="images", legend={"orientation": "h", "y": 1.15})
    return figure




def health_figure(log: "pd.DataFrame", height: int = 260) -> go.Figure:
    """Embedding health against training step, one small panel per figure (curate.evaluate.health)."""
    from plotly.subplots import make_subplots

    arrow = {key: "" if not reading else " ↓" if key in LOWER_IS_BETTER else " ↑" for key, _, reading, _ in FIGURES}
    panels = [(key, name + arrow[key]) for key, name, _, _ in FIGURES if key in log.columns and log[key].notna().any()]
    figure = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[t for _, t in panels],
                           horizontal_spacing=0.08)
    for col, (key, title) in enumerate(panels, start=1):
        figure.add_trace(go.Scatter(x=log["step"].tolist(), y=log[key].tolist(), mode="lines+markers", marker_size=4,
                                    line_color=CUT_COLOUR, name=title,
                                    hovertemplate=f"step %{{x}}<br>{title} %{{y:.3f}}<extra></extra>"), row=1, col=col)
    figure.update_annotations(font_size=11)
    figure.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, showlegend=False)
    return figure


def box_canvas(preview: np.ndarray, size: tuple[int, int], box: Sequence[float] | None = None,
               grid: int = 24) -> go.Figure:
    """The uploaded image to drag a box on: `preview` (h, w, 3) uint8 drawn over the full image's pixel
    coordinates `size` (width, height), so a selection's range is in the image's own pixels. An invisible
    grid of points lies over it because Plotly reports a box selection only on a trace that can be selected.
    `box` (x0, y0, x1, y1), the one searched by now, is outlined."""
    width, height = size
    ph, pw = preview.shape[:2]
    xs, ys = np.meshgrid(np.linspace(0, width, grid), np.linspace(0, height, grid))
    fig = go.Figure([
        go.Image(z=preview, x0=0.5 * width / pw, dx=width / pw, y0=0.5 * height / ph, dy=height / ph,
                 hoverinfo="skip"),
        go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", marker={"opacity": 0}, hoverinfo="skip",
                   showlegend=False)])
    if box is not None:
        fig.add_shape(type="rect", x0=box[0], y0=box[1], x1=box[2], y1=box[3], line={"color": "#ff4b4b", "width": 2})
    fig.update_xaxes(range=[0, width], visible=False)
    fig.update_yaxes(range=[height, 0], visible=False, scaleanchor="x")
    fig.update_layout(dragmode="select", margin={"l": 0, "r": 0, "t": 0, "b": 0},
                      height=int(min(360, 300 * height / max(width, 1))) + 10)  # ~the query column's width
    return fig


def selected_box(selection: Mapping | None, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) whole pixels, inside an image of `size` (width, height), of the last box dragged on a
    `box_canvas` (Streamlit's selection state: {"box": [{"x": [a, b], "y": [c, d]}, ...]}); None without one."""
    boxes = (selection or {}).get("box") or []
    if not boxes:
        return None
    width, height = size
    xs, ys = sorted(boxes[-1]["x"]), sorted(boxes[-1]["y"])
    x0, x1 = (int(round(min(max(v, 0), width))) for v in xs)
    y0, y1 = (int(round(min(max(v, 0), height))) for v in ys)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None
