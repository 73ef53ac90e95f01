"""2-D projections for the map view. UMAP by default; PCA for tiny sets (UMAP needs neighbours)."""
from __future__ import annotations

import inspect
import logging
import warnings

import numpy as np

from curate.registry import Registry

log = logging.getLogger(__name__)
PROJECTIONS: Registry = Registry("projection")
UMAP_MIN_POINTS = 64
UMAP_EXACT_BELOW = 4096  # umap-learn compares all pairs below this many points, ignoring given neighbours


@PROJECTIONS.register("pca")
def pca_2d(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) float32 onto the two leading principal axes."""
    x = np.asarray(vectors, dtype=np.float32)
    if len(x) < 2:
        return np.zeros((len(x), 2), np.float32)
    out = pca_reduce(x, 2)
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))).astype(np.float32)


@PROJECTIONS.register("umap")
def umap_2d(vectors: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
            knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(N, D) -> (N, 2) float32 UMAP (cosine). PCA to 50 dims first: same map, several times faster.

    `knn` (sims, ids), each (N, >= n_neighbors - 1), row positions without the row itself (-1:
    none): the neighbours UMAP would otherwise search for (a workspace's shared k-NN graph, in the
    full embedding space). UMAP uses them from UMAP_EXACT_BELOW points; below, it compares all pairs.
    """
    import umap  # heavy import (numba): only when a map is made

    x = np.asarray(vectors, dtype=np.float32)
    if x.shape[1] > 50 and len(x) > 50:
        x = pca_reduce(x, 50)
    n_neighbors = min(n_neighbors, len(x) - 1)
    precomputed = (None, None, None)
    if knn is not None and len(x) >= UMAP_EXACT_BELOW and knn[1].shape[1] >= n_neighbors - 1:
        precomputed = umap_neighbours(*knn, n_neighbors)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        random_state=seed, low_memory=True, n_jobs=1, precomputed_knn=precomputed)
    with warnings.catch_warnings():  # "no search index: transform unavailable" - the map never transforms
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return reducer.fit_transform(x).astype(np.float32)


def umap_neighbours(sims: np.ndarray, ids: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """UMAP's precomputed_knn (indices, cosine distances), each (N, n_neighbors), self first; a missing
    neighbour (-1) becomes the row itself, which UMAP ignores."""
    own = np.arange(len(ids))[:, None]
    ids = ids[:, :n_neighbors - 1]
    idx = np.hstack([own, np.where(ids >= 0, ids, own)]).astype(np.int64)
    dist = np.hstack([np.zeros((len(ids), 1)), np.where(ids >= 0, 1.0 - sims[:, :n_neighbors - 1], 0.0)])
    return idx, np.clip(dist, 0.0, 2.0).astype(np.float32)


def pca_reduce(x: np.ndarray, dims: int) -> np.ndarray:
    """(N, D) -> (N, dims) onto the leading principal axes (eigh of the D x D covariance: fast for N >> D)."""
    x = x - x.mean(0)
    cov = (x.T @ x).astype(np.float64)
    _, vecs = np.linalg.eigh(cov)
    return (x @ vecs[:, ::-1][:, :dims]).astype(np.float32)


def project_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0,
               knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Project with `method` ('auto' = UMAP, or PCA below UMAP_MIN_POINTS points); `knn` (sims, ids)
    is handed to projections that search neighbours (see `umap_2d`)."""
    if method == "auto":
        method = "umap" if len(vectors) >= UMAP_MIN_POINTS else "pca"
    project = PROJECTIONS.get(method)
    if knn is not None and "knn" in inspect.signature(project).parameters:
        return project(vectors, seed=seed, knn=knn)
    return project(vectors, seed=seed)
