"""Per-image scores from the k-nearest-neighbour graph of the embeddings.

    uniqueness  cosine distance to the k-th nearest neighbour: high for rare images, 0 for duplicates
    typicality  1 / mean cosine distance to the k nearest neighbours (TypiClust's density): high
                in the dense core of a mode, low for outliers and ambiguous images
    outlier     uniqueness far above the rest (median + 3 scaled MADs): robust to the score's scale

Vectors are L2-normalised (N, D) float32, so cosine similarity is the inner product. Neighbours
come from FAISS: exact up to EXACT_MAX rows, a k-means-partitioned search above (see `knn`).
"""
from __future__ import annotations

import math

import faiss
import numpy as np
import pandas as pd

EXACT_MAX = 20_000  # exact all-pairs kNN costs N^2 D: ~10 s of one core at 20k, hours at 1M
NPROBE = 8  # partitions searched per query partition: recall@10 ~0.97 on clustered 128-d vectors
MAD_SCALE = 1.4826  # MAD * this estimates the standard deviation of normal data


def knn(vectors: np.ndarray, k: int, exact: bool | None = None, nprobe: int = NPROBE,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows: (sims (N, k) float32 descending, ids (N, k) int64).

    Missing neighbours (fewer than k other rows, or a partition too small) have id -1 and
    similarity -1. Exact when `exact` (default: N <= EXACT_MAX). Otherwise the rows are split
    into ~sqrt(N) k-means partitions and the rows of each partition are searched, as one block
    of matrix products (faiss.knn), against the rows of the `nprobe` partitions nearest to it:
    ~6x faster than a per-query IVF scan at equal recall.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    k = int(k)
    if exact is None:
        exact = len(x) <= EXACT_MAX
    want = min(k + 1, len(x))  # +1: each row finds itself
    if exact:
        sims, ids = faiss.knn(x, x, want, metric=faiss.METRIC_INNER_PRODUCT)
    else:
        sims, ids = _partitioned_knn(x, want, nprobe, seed)
    return _drop_self(sims, ids, k)


def _partitioned_knn(x: np.ndarray, want: int, nprobe: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    nlist = max(1, 2 ** round(math.log2(math.sqrt(len(x)))))
    km = faiss.Kmeans(x.shape[1], nlist, niter=10, seed=seed, spherical=True, max_points_per_centroid=64)
    km.train(x)
    part = km.index.search(x, 1)[1][:, 0]
    near = km.index.search(km.centroids, min(nprobe, nlist))[1]
    order = np.argsort(part, kind="stable")
    starts = np.searchsorted(part[order], np.arange(nlist + 1))
    members = [order[starts[p]:starts[p + 1]] for p in range(nlist)]
    sims = np.full((len(x), want), -1.0, dtype=np.float32)
    ids = np.full((len(x), want), -1, dtype=np.int64)
    for p, rows in enumerate(members):
        if len(rows):
            pool = np.concatenate([members[q] for q in near[p] if q >= 0])
            s, i = faiss.knn(x[rows], x[pool], min(want, len(pool)), metric=faiss.METRIC_INNER_PRODUCT)
            sims[rows, :s.shape[1]], ids[rows, :s.shape[1]] = s, pool[i]
    return sims, ids


def _drop_self(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id (or, where a duplicate outranked it, the last column); pad to k."""
    is_self = ids == np.arange(len(ids))[:, None]
    is_self[~is_self.any(1), -1] = True
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :ids.shape[1] - 1]
    sims, ids = np.take_along_axis(sims, keep, 1), np.take_along_axis(ids, keep, 1)
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-1.0)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    np.clip(sims, -1.0, 1.0, out=sims)
    return sims, ids


def neighbours_or_knn(vectors: np.ndarray, k: int, neighbours: tuple[np.ndarray, np.ndarray] | None = None,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest other rows (as `knn`): the first k columns of `neighbours` (sims, ids), a
    graph computed before (the workspace's shared one), when it is that wide; else searched now."""
    if neighbours is not None and neighbours[1].shape[1] >= k and len(neighbours[1]) == len(vectors):
        return neighbours[0][:, :k], neighbours[1][:, :k]
    return knn(vectors, k, seed=seed)


def uniqueness_from(sims: np.ndarray) -> np.ndarray:
    """(N,) cosine distance to the last (k-th) neighbour of a `knn` result, in [0, 2]."""
    return np.clip(1.0 - sims[:, -1], 0.0, 2.0).astype(np.float32)


def typicality_from(sims: np.ndarray) -> np.ndarray:
    """(N,) TypiClust typicality, 1 / (mean cosine distance to the k neighbours + 1e-5).

    The paper uses squared Euclidean distance, which is 2x cosine distance on unit vectors:
    the same ranking.
    """
    return (1.0 / (np.clip(1.0 - sims, 0.0, 2.0).mean(1) + 1e-5)).astype(np.float32)


def uniqueness(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """(N,) cosine distance to the k-th nearest neighbour: how far an image is from its kind."""
    return uniqueness_from(knn(vectors, k)[0])


def typicality(vectors: np.ndarray, k: int = 20) -> np.ndarray:
    """(N,) inverse mean cosine distance to the k nearest neighbours: local density."""
    return typicality_from(knn(vectors, k)[0])


def outliers(scores: np.ndarray, mads: float = 3.0) -> np.ndarray:
    """(N,) bool: score > median + mads * 1.4826 * MAD (a robust 3-sigma rule, unaffected by
    the outliers themselves)."""
    scores = np.asarray(scores, dtype=np.float64)
    median = np.median(scores)
    mad = np.median(np.abs(scores - median))
    return scores > median + mads * MAD_SCALE * mad


def image_scores(vectors: np.ndarray, k: int = 10, mads: float = 3.0) -> pd.DataFrame:
    """One row per vector: uniqueness, typicality (both over the same k neighbours), outlier."""
    return scores_from(knn(vectors, k)[0], mads)


def scores_from(sims: np.ndarray, mads: float = 3.0) -> pd.DataFrame:
    """`image_scores` from a k-NN graph's similarities (N, k), descending per row."""
    unique = uniqueness_from(sims)
    return pd.DataFrame({"uniqueness": unique, "typicality": typicality_from(sims),
                         "outlier": outliers(unique, mads)})
