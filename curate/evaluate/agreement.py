"""Do two encoders see the same neighbourhoods? Label-free agreement of their k-nearest-neighbour sets.

For a query image, each encoder's k nearest images (cosine, the image itself left out) form a set;
their Jaccard index says how much the two encoders agree about what that image is like: 1 when
they return the same k images, 0 when they share none. Averaged over a sample of queries it
tells whether a longer run (or another recipe) changed anything a search or a selection would
show; the queries with the lowest Jaccard show where.
"""
from __future__ import annotations

import numpy as np


def knn_ids(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) int64 rows of the k nearest rows of L2-normalised `vectors` to each row in `queries`
    (by inner product, exact), each query itself left out; -1 pads when there are fewer than k others."""
    import faiss

    x = np.ascontiguousarray(vectors, np.float32)
    queries = np.asarray(queries, np.int64)
    want = min(k + 1, len(x))
    _, ids = faiss.knn(x[queries], x, want, metric=faiss.METRIC_INNER_PRODUCT)
    out = np.full((len(queries), k), -1, np.int64)
    for i, (q, row) in enumerate(zip(queries, ids)):
        others = row[(row != q) & (row >= 0)][:k]
        out[i, :len(others)] = others
    return out


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(Q,) Jaccard index of the sets in each row of (Q, k) id arrays (-1 entries ignored)."""
    out = np.empty(len(a), np.float64)
    for i, (ra, rb) in enumerate(zip(a, b)):
        sa, sb = set(ra[ra >= 0].tolist()), set(rb[rb >= 0].tolist())
        union = len(sa | sb)
        out[i] = len(sa & sb) / union if union else 1.0
    return out


def label_purity(neighbours: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> float:
    """Share of the neighbours that carry their query's label (what a weighted kNN probe rewards)."""
    valid = neighbours >= 0
    same = labels[np.where(valid, neighbours, 0)] == labels[np.asarray(queries)][:, None]
    return float((same & valid).sum() / max(valid.sum(), 1))
