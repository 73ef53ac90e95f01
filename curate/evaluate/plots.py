"""The evaluation report's figures as PNG files (matplotlib, Agg; written atomically).

Figures are built on `matplotlib.figure.Figure` directly, not pyplot: no global figure state, so
they are safe in the app's threads and need no backend switch. Each function returns the path
written, or None when there is nothing to draw.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from curate import storage
from curate.evaluate.health import FIGURES, titled

MAX_LEGEND = 20  # classes named in a legend; more get colours only
MAX_MAP_POINTS = 50_000  # a scatter beyond this is slow to draw and no more readable


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` as PNG via a temp file + rename."""
    with storage.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return Path(path)


def plot_training_curves(log: list[dict], path: str | Path) -> Path | None:
    """Total and per-task losses against step (and per-task accuracies, where logged) from train_log.jsonl rows."""
    rows = [r for r in log if "step" in r]
    if not rows:
        return None
    keys = sorted({k for r in rows for k in r})
    losses = [k for k in keys if k == "loss" or k.endswith("/loss")]
    accuracies = [k for k in keys if k.endswith("/accuracy")]
    fig = Figure(figsize=(9 if accuracies else 6, 3.6))
    panels = fig.subplots(1, 2 if accuracies else 1, squeeze=False)[0]
    for ax, names, ylabel in zip(panels, (losses, accuracies), ("loss", "pretext accuracy")):
        for name in names:
            steps = [r["step"] for r in rows if name in r]
            ax.plot(steps, [r[name] for r in rows if name in r], label=name, marker="." if len(steps) < 3 else None)
        ax.set(xlabel="step", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    panels[0].set_title("training")
    return save_png(fig, path)


def plot_health_curves(log: list[dict], path: str | Path) -> Path | None:
    """Embedding health against step (health_log.jsonl rows), one panel per figure."""
    rows = [r for r in log if "effective_rank" in r]
    if not rows:
        return None
    fig = Figure(figsize=(12, 3))
    for ax, (key, name, reading, _) in zip(fig.subplots(1, len(FIGURES)), FIGURES):
        title = titled(name, reading)
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker=".", color="#4c72b0")
        ax.set(xlabel="step", title=title)
        ax.title.set_fontsize(9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle("embedding health while training (fixed training images)", fontsize=10)
    return save_png(fig, path)


def plot_layer_probes(scores: dict[str, float], path: str | Path, chance: float | None = None) -> Path | None:
    """Bar chart of linear-probe top-1 per backbone stage ({stage: accuracy in [0, 1]})."""
    if not scores:
        return None
    fig = Figure(figsize=(5, 3.4))
    ax = fig.subplots()
    bars = ax.bar(list(scores), [100 * v for v in scores.values()], color="#4c72b0")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label="chance")
        ax.legend(fontsize=8)
    ax.set(ylabel="linear probe top-1 (%)", title="per-layer linear probes", ylim=(0, 100))
    return save_png(fig, path)


def plot_embedding_map(xy: np.ndarray, labels: np.ndarray | None, path: str | Path, seed: int = 0) -> Path | None:
    """The 2-D map (N, 2) coloured by label (object array, None = unlabelled); NaN rows are skipped."""
    xy = np.asarray(xy, dtype=np.float32)
    keep = np.flatnonzero(np.isfinite(xy).all(1))
    if len(keep) == 0:
        return None
    if len(keep) > MAX_MAP_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(keep, MAX_MAP_POINTS, replace=False))
    fig = Figure(figsize=(6, 5.5))
    ax = fig.subplots()
    _scatter_by_label(ax, xy[keep], None if labels is None else np.asarray(labels, dtype=object)[keep],
                      max(1.0, min(12.0, 20_000 / len(keep))), legend=True)
    ax.set(title=f"2-D map, {len(keep):,} images by label")
    return save_png(fig, path)


def _scatter_by_label(ax, xy: np.ndarray, labels: np.ndarray | None, size: float, legend: bool) -> None:
    """Points (n, 2) coloured by label (None: unlabelled, grey); a legend when asked and the classes are few."""
    names = np.array(["(no label)" if labels is None or labels[i] is None else str(labels[i]) for i in range(len(xy))])
    classes = sorted(set(names) - {"(no label)"})
    if "(no label)" in names:
        ax.scatter(*xy[names == "(no label)"].T, s=size, c="lightgrey", label="(no label)", linewidths=0)
    for colour, name in zip(_colours(len(classes)), classes):
        ax.scatter(*xy[names == name].T, s=size, color=colour, label=name, linewidths=0)
    if legend and 0 < len(classes) <= MAX_LEGEND:
        ax.legend(fontsize=7, markerscale=max(1.0, 4 / size), loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    ax.set(xticks=[], yticks=[])


def plot_projections(maps: dict[str, np.ndarray], labels: np.ndarray | None, path: str | Path) -> Path | None:
    """The same images on each 2-D map side by side ({"UMAP": (n, 2), "t-SNE": ..., "PCA": ...}), coloured
    by label (labels (n,) object array or None): how much each view's clusters are the method's own."""
    maps = {name: np.asarray(xy, np.float32) for name, xy in maps.items() if xy is not None and len(xy)}
    if not maps:
        return None
    n = len(next(iter(maps.values())))
    fig = Figure(figsize=(4.2 * len(maps) + 1.5, 4.4))
    axes = np.atleast_1d(fig.subplots(1, len(maps)))
    for i, (ax, (title, xy)) in enumerate(zip(axes, maps.items())):
        keep = np.isfinite(xy).all(1)
        _scatter_by_label(ax, xy[keep], None if labels is None else np.asarray(labels, dtype=object)[keep],
                          max(1.0, min(12.0, 8_000 / n)), legend=i == len(maps) - 1)
        ax.set(title=title)
    fig.suptitle(f"{n:,} images on each map, by label", fontsize=10)
    return save_png(fig, path)


def plot_summary(trained: dict[str, float], random_init: dict[str, float], path: str | Path) -> Path | None:
    """Grouped bars: each metric (kNN, probe, NMI, ...; values in [0, 1]) trained vs random weights."""
    if not trained:
        return None
    names = list(trained)
    x = np.arange(len(names))
    fig = Figure(figsize=(max(4.5, 1.2 * len(names) + 1.5), 3.6))
    ax = fig.subplots()
    width = 0.38 if random_init else 0.6
    bars = ax.bar(x - (width / 2 if random_init else 0), [100 * trained[n] for n in names], width, label="trained")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    if random_init:
        values = [100 * random_init.get(n, np.nan) for n in names]
        bars = ax.bar(x + width / 2, values, width, label="random weights", color="#bbbbbb")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(x, names, fontsize=8)
    ax.set(ylabel="score (%)", ylim=(0, 105), title="representation quality vs random init")
    ax.legend(fontsize=8)
    return save_png(fig, path)


def write_report_plots(out_dir: str | Path, report: dict, train_log: list[dict], xy: np.ndarray,
                       labels: np.ndarray | None, health_log: list[dict] = (),
                       projections: tuple[dict[str, np.ndarray], np.ndarray | None] = ({}, None)) -> dict[str, str]:
    """Every figure an eval report has data for, into out_dir: {name: file name}; stale ones are removed.

    report: the eval.json dict; train_log / health_log: rows of model/train_log.jsonl / health_log.jsonl;
    xy (N, 2): the 2-D map; labels (N,) or None; projections: ({method: (n, 2)}, labels (n,)) of a sample.
    """
    out = Path(out_dir)
    headline = {"kNN": "knn_top1", "linear probe": "linear_probe_top1", "k-means NMI": "kmeans_nmi",
                "k-means ARI": "kmeans_ari"}
    trained = {k: report[v] for k, v in headline.items() if v in report}
    random_init = {k: report[f"{v}_random_init"] for k, v in headline.items() if f"{v}_random_init" in report}
    written = {
        "training_curves": plot_training_curves(train_log, out / "training_curves.png"),
        "training_health": plot_health_curves(list(health_log), out / "training_health.png"),
        "layer_probes": plot_layer_probes(report.get("layer_probe_top1", {}), out / "layer_probes.png",
                                          chance=1 / max(1, report.get("classes", 1))),
        "embedding_map": plot_embedding_map(xy, labels, out / "embedding_map.png"),
        "projections": plot_projections(*projections, out / "projections.png"),
        "summary": plot_summary(trained, random_init, out / "summary.png"),
    }
    for name, path in written.items():
        if path is None:
            (out / f"{name}.png").unlink(missing_ok=True)  # a figure from an earlier run would mislead
    return {name: path.name for name, path in written.items() if path is not None}


def _colours(n: int) -> list:
    """n distinct colours: tab10/tab20 for few classes, an evenly sampled turbo map for many."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](v) for v in np.linspace(0, 1, n)]
