"""Clustering quality: k-means on the embeddings scored against the labels with NMI and ARI.

k = number of classes, as in the SSL clustering protocol (e.g. SCAN, DeepCluster). Spherical
k-means (centroids renormalised) because the embeddings are compared by cosine, seeded with
k-means++ (faiss seeds with k random points, which often puts two centroids in one class and
one across two, a local optimum Lloyd iterations never leave). The result still depends on the
seed, so the scores are averaged over several seeds.

Example:
    >>> scores = kmeans_scores(vectors, labels, seeds=(0, 1, 2))
    >>> scores.nmi, scores.ari
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


@dataclass
class ClusterScores:
    nmi: float  # normalised mutual information in [0, 1], mean over seeds
    ari: float  # adjusted Rand index in [-0.5, 1] (0 = chance), mean over seeds
    nmi_std: float
    ari_std: float
    k: int


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int = 0, sample: int = 20_000) -> np.ndarray:
    """(k, D) initial centroids drawn from x (N, D) by k-means++ (Arthur & Vassilvitskii, 2007).

    Each next centroid is a row drawn with probability proportional to its squared distance to
    the nearest centroid so far; at most `sample` random rows are considered, to bound the cost.
    """
    rng = np.random.default_rng(seed)
    if len(x) > sample:
        x = x[np.sort(rng.choice(len(x), sample, replace=False))]
    centroids = np.empty((k, x.shape[1]), np.float32)
    centroids[0] = x[rng.integers(len(x))]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for i in range(1, k):
        total = float(d2.sum())
        j = rng.choice(len(x), p=d2 / total) if total > 0 else rng.integers(len(x))  # all equal: any row
        centroids[i] = x[j]
        d2 = np.minimum(d2, ((x - centroids[i]) ** 2).sum(1))
    return centroids


def kmeans_assign(x: np.ndarray, k: int, seed: int = 0, niter: int = 25,
                  max_points_per_centroid: int = 1024) -> np.ndarray:
    """(N,) cluster id in [0, k) of each row of x (N, D), by faiss spherical k-means from a k-means++ start.

    Trains on at most k * max_points_per_centroid rows (faiss subsamples) and assigns every row.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1,  # small sets are legitimate here: no warning per call
                      max_points_per_centroid=max_points_per_centroid)
    km.train(x, init_centroids=kmeans_plus_plus(x, k, seed))
    _, assign = km.index.search(x, 1)
    return assign[:, 0]


def kmeans_scores(x: np.ndarray, labels: np.ndarray, k: int | None = None, seeds: tuple[int, ...] = (0, 1, 2),
                  niter: int = 25) -> ClusterScores:
    """NMI and ARI of k-means clusters of x (N, D) against integer labels (N,); k defaults to the class count."""
    labels = np.asarray(labels)
    k = int(k or len(np.unique(labels)))
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means needs 1 <= k <= N, got k={k} for N={len(x)}")
    nmi, ari = [], []
    for seed in seeds:
        assign = kmeans_assign(x, k, seed, niter)
        nmi.append(normalized_mutual_info_score(labels, assign))
        ari.append(adjusted_rand_score(labels, assign))
    return ClusterScores(float(np.mean(nmi)), float(np.mean(ari)), float(np.std(nmi)), float(np.std(ari)), k)
