"""Facility location: pick the images that best represent everything else (Wei, Iyer & Bilmes,
2015, "Submodularity in Data Subset Selection and Active Learning"; greedy within 1 - 1/e of the
optimum, Nemhauser, Wolsey & Fisher, 1978; lazy evaluation, Minoux, 1978; as in apricot).

    F(S) = sum_i max_{j in S} sim(i, j),   sim = cosine clipped to [0, 1]

over each image i's k nearest neighbours and itself only (a sparse kNN graph: 1M images x 10
neighbours fit in ~100 MB; the full N x N similarity matrix would not). Each pick is the image
whose neighbourhood is served best and not yet served: dense regions get representatives in
proportion to their mass, and near-duplicates of a chosen image are worth nothing.

Pick it for a representative subset (a training set that mirrors the data distribution, a
summary for review); pick `kcenter` instead to reach rare corners, `probcover` for very small
labelling budgets.
"""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES


@STRATEGIES.register("facility_location")
def facility_location(vectors: np.ndarray, n: int, seed: int = 0, k: int = 10,
                      include: np.ndarray | None = None, neighbours: tuple | None = None) -> np.ndarray:
    """(n,) int64 ranking by lazy greedy on the k-nearest-neighbour graph. `include`: rows
    already chosen (their neighbourhoods count as served; not returned). `seed` breaks ties
    (and orders the tail once every gain is 0, which only exact duplicates cause) and seeds the
    partitioned neighbour search beyond curate.quality.scores.EXACT_MAX rows. `neighbours`: a k-NN
    graph (sims, ids) of these rows computed before (the workspace's), used instead of searching."""
    return facility_location_greedy(vectors, n, seed, k, include, neighbours)[0]


def facility_location_greedy(vectors: np.ndarray, n: int, seed: int = 0, k: int = 10,
                             include: np.ndarray | None = None,
                             neighbours: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ranking (n,) int64, marginal gains (n,) float64, non-increasing)."""
    from curate.quality.scores import neighbours_or_knn  # lazy: faiss and numba load on first use
    from curate.select._coverage import lazy_greedy

    include = np.unique(np.asarray(include, np.int64)) if include is not None else None
    n = min(int(n), len(vectors) - (0 if include is None else len(include)))
    sims, ids = neighbours_or_knn(vectors, k, neighbours, seed)
    indptr, cover, weight = similarity_graph(sims, ids)
    tiebreak = np.random.default_rng(seed).permutation(len(vectors))
    return lazy_greedy(indptr, cover, weight, n, tiebreak, include)


def similarity_graph(sims: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reverse adjacency as CSR (indptr (N+1,), cover (E,) int32, weight (E,) float32): candidate
    j serves row i with weight sim(i, j) when j is one of i's neighbours (sims, ids from
    `knn`) or i itself (weight 1). Zero weights and missing neighbours (-1) are dropped."""
    rows, k = ids.shape
    own = np.arange(rows, dtype=np.int32)
    cand = np.concatenate([own, ids.astype(np.int32).ravel()])
    served = np.concatenate([own, np.repeat(own, k)])
    weight = np.concatenate([np.ones(rows, np.float32), np.clip(sims, 0.0, 1.0).ravel()])
    keep = (cand >= 0) & (weight > 0)
    cand, served, weight = cand[keep], served[keep], weight[keep]
    order = np.argsort(cand, kind="stable")
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(cand, minlength=rows), out=indptr[1:])
    return indptr, served[order], weight[order]


def objective(indptr: np.ndarray, cover: np.ndarray, weight: np.ndarray, chosen: np.ndarray) -> float:
    """F(chosen) on a graph from `similarity_graph` (for tests and reports)."""
    best = np.zeros(len(indptr) - 1, np.float64)
    for j in np.asarray(chosen, np.int64):
        lo, hi = indptr[j], indptr[j + 1]
        np.maximum.at(best, cover[lo:hi], weight[lo:hi])
    return float(best.sum())
