"""Two selections side by side: overlap, Jaccard, and the same summary metrics for both, measured
against the same pool (every image with an embedding), so the figures are comparable whatever
pool or filters each selection was made with."""
from __future__ import annotations

import numpy as np

from curate.data.manifest import labels as manifest_labels
from curate.steps.index import indexed_rows
from curate.steps.select import kmeans_clusters, selection_metrics
from curate.workspace import Workspace


def overlap(a, b) -> dict:
    """Set figures of two id lists: sizes, shared ids, ids only in each, Jaccard index."""
    a, b = set(int(i) for i in a), set(int(i) for i in b)
    union = len(a | b)
    return {"n_a": len(a), "n_b": len(b), "overlap": len(a & b), "only_a": len(a - b), "only_b": len(b - a),
            "jaccard": len(a & b) / union if union else 1.0}


def compare_selections(ws: Workspace, a: str, b: str, seed: int = 0) -> dict:
    """`overlap` of selections `a` and `b` plus, under "metrics", each one's `selection_metrics`
    (coverage radius, mean distance, label and k-means cluster histograms against the pool)."""
    pool = indexed_rows(ws)
    vectors = np.asarray(ws.embeddings())[pool]
    manifest = ws.manifest()
    position = np.full(len(manifest), -1)
    position[pool] = np.arange(len(pool))
    groups = {"cluster": kmeans_clusters(vectors, seed=seed)}
    labels = manifest_labels(manifest)
    if labels is not None:
        groups["label"] = np.asarray(labels, dtype=object)[pool].astype(str)
    ids = {name: ws.selection(name).sort_values("rank")["id"].to_numpy(np.int64) for name in (a, b)}
    metrics = {}
    for name, chosen in ids.items():
        rows = position[chosen]
        rows = rows[rows >= 0]  # images that lost their embedding since the selection was made
        if not len(rows):
            raise ValueError(f"selection {name!r} has no image with an embedding: nothing to compare")
        metrics[name] = selection_metrics(vectors, rows, groups, seed=seed)
    return {**overlap(ids[a], ids[b]), "metrics": metrics}
