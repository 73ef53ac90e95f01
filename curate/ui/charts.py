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
