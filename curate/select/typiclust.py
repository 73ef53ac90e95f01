"""TypiClust (Hacohen, Dekel & Weinshall, 2022, "Active Learning on a Budget: Opposite Strategies
Suit High and Low Budgets"): k-means into as many clusters as the budget (at most
`max_clusters`), then from each cluster, largest uncovered first, its most typical image
(highest inverse mean distance to its k=20 nearest neighbours within the cluster).

Budgets beyond `max_clusters` cycle through the clusters again (fewest picks first, then
largest), taking each cluster's next most typical image; typicality is computed once per
cluster (the paper recomputes it without the picked image, a negligible difference). Clusters
of at most `min_cluster_size` images (outlier crumbs) are used only once the others run out.

Pick it for the first labels of a new dataset (tens to a few hundred): typical images of every
mode, no outliers. For large budgets prefer `facility_location` (`auto` switches past 500 picks),
`kcenter` to reach the corners.

Unlike the other strategies, the clustering depends on the budget (up to `max_clusters`), so a
smaller budget's ranking is not a prefix of a larger one's below that cap; set `clusters` to fix
it (then any budget is a prefix).
"""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES


@STRATEGIES.register("typiclust")
def typiclust(vectors: np.ndarray, n: int, seed: int = 0, max_clusters: int = 500, k: int = 20,
              min_cluster_size: int = 5, clusters: int | None = None,
              include: np.ndarray | None = None) -> np.ndarray:
    """(n,) int64 ranking. clusters: default min(n + len(include), max_clusters), the paper's
    rule; include: rows already chosen (not returned); a cluster holding one counts as covered,
    as labelled images do in the paper. `seed` seeds k-means."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    include = np.unique(np.asarray(include, np.int64)) if include is not None else np.empty(0, np.int64)
    n = min(int(n), len(x) - len(include))
    clusters = min(len(x), max(1, int(clusters) if clusters else min(int(max_clusters), n + len(include))))
    label = kmeans_labels(x, clusters, seed)
    size = np.bincount(label, minlength=clusters)
    covered = np.bincount(label[include], minlength=clusters)
    rank = _typicality_rank(x, label, clusters, k)  # 0 = the cluster's most typical image
    free = np.ones(len(x), bool)
    free[include] = False
    # per cluster, picks so far (included rows first) then size decide the visiting order;
    # a cluster's free images are taken in typicality order, one per visit
    rank_free = np.zeros(len(x), np.int64)
    for c, rows in enumerate(_members(label, clusters)):
        rows = rows[free[rows]]
        rank_free[rows[np.argsort(rank[rows], kind="stable")]] = np.arange(len(rows))
    visit = covered[label] + rank_free
    crumb = size[label] <= min_cluster_size
    order = np.lexsort((label, -size[label], visit, crumb))
    return order[free[order]][:n].astype(np.int64)


typiclust.budget_dependent = True  # contract tests: a smaller budget is not a prefix (see above)


def kmeans_labels(x: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """(N,) int64 k-means cluster of each row: spherical k-means from a k-means++ start (faiss's
    random start often splits a big mode and merges two small ones), 20 iterations on at most
    256 rows per centroid."""
    from curate.evaluate.clustering import kmeans_assign  # lazy: faiss loads on first use

    return kmeans_assign(x, int(clusters), seed, niter=20, max_points_per_centroid=256).astype(np.int64)


def _typicality_rank(x: np.ndarray, label: np.ndarray, clusters: int, k: int) -> np.ndarray:
    """(N,) position of each row in its cluster by decreasing typicality (k neighbours, at most
    half the cluster, as in the paper's code)."""
    from curate.quality.scores import knn, typicality_from

    rank = np.zeros(len(x), np.int64)
    for rows in _members(label, clusters):
        if len(rows) > 2:
            score = typicality_from(knn(x[rows], min(k, len(rows) // 2))[0])
            rank[rows[np.argsort(-score, kind="stable")]] = np.arange(len(rows))
    return rank


def _members(label: np.ndarray, clusters: int) -> list[np.ndarray]:
    order = np.argsort(label, kind="stable")
    bounds = np.searchsorted(label[order], np.arange(clusters + 1))
    return [order[bounds[c]:bounds[c + 1]] for c in range(clusters)]
