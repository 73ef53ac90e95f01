"""Cluster-balanced (stratified) sampling: k-means strata, then round robin over the clusters,
largest first, one image per cluster per round, so every prefix of the ranking holds about as
many images of each cluster (small clusters run out and drop out of later rounds).

Within a cluster the images come in random order (seeded): a stratified random sample, unbiased
inside each stratum. `order="nearest"` takes the images nearest the centroid first instead
(prototypes first, at the price of later picks crowding the cluster's core).

Pick it when the data is dominated by a few modes (one camera, one class) and the selection
should give rare modes an equal say, with no labels to balance on; it is the unsupervised
stand-in for class balance (Sener & Savarese's core-set paper and TypiClust use k-means strata
the same way; cf. stratified sampling, Neyman, 1934).
"""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES
from curate.select.typiclust import kmeans_labels


@STRATEGIES.register("cluster_balanced")
def cluster_balanced(vectors: np.ndarray, n: int, seed: int = 0, clusters: int = 10,
                     order: str = "random", include: np.ndarray | None = None) -> np.ndarray:
    """(n,) int64 ranking. clusters: number of k-means strata (fixed, not tied to n, so that any
    budget is a prefix; use about sqrt(n) for large budgets); order: "random" (seeded) or
    "nearest" (to the centroid) within a cluster; include: rows already chosen (they count in
    their cluster's share; not returned)."""
    if order not in ("random", "nearest"):
        raise ValueError(f"order must be 'random' or 'nearest', got {order!r}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    include = np.unique(np.asarray(include, np.int64)) if include is not None else np.empty(0, np.int64)
    n = min(int(n), len(x) - len(include))
    k = min(int(clusters), len(x))
    label = kmeans_labels(x, k, seed)
    size = np.bincount(label, minlength=k)
    free = np.ones(len(x), bool)
    free[include] = False
    within = _centroid_distance(x, label, k) if order == "nearest" else np.random.default_rng(seed).random(len(x))
    turn = np.zeros(len(x), np.int64)  # the round in which each image is taken
    turn[include] = -1
    by_cluster = np.lexsort((within, label))
    by_cluster = by_cluster[free[by_cluster]]
    starts = np.searchsorted(label[by_cluster], np.arange(k + 1))
    for c in range(k):
        rows = by_cluster[starts[c]:starts[c + 1]]
        turn[rows] = np.arange(len(rows)) + np.count_nonzero(label[include] == c)
    ranking = np.lexsort((label, -size[label], turn))
    return ranking[free[ranking]][:n].astype(np.int64)


def _centroid_distance(x: np.ndarray, label: np.ndarray, k: int) -> np.ndarray:
    """(N,) cosine distance of each row to its cluster's (renormalised) mean."""
    order = np.argsort(label, kind="stable")
    starts = np.searchsorted(label[order], np.arange(k))
    sums = np.zeros((k, x.shape[1]), np.float64)
    present = np.unique(label)
    sums[present] = np.add.reduceat(x[order], starts[present], axis=0)
    centres = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return 1.0 - np.einsum("nd,nd->n", x, centres[label])
