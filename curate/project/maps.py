"""2-D projections for the map view. UMAP by default; PCA for tiny sets (UMAP needs neighbours)."""
from __future__ import annotations

import logging

import numpy as np

from curate.registry import Registry

log = logging.getLogger(__name__)
PROJECTIONS: Registry = Registry("projection")
UMAP_MIN_POINTS = 64


@PROJECTIONS.register("pca")
def pca_2d(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) float32 onto the two leading principal axes."""
    x = np.asarray(vectors, dtype=np.float32)
    if len(x) < 2:
        return np.zeros((len(x), 2), np.float32)
    out = pca_reduce(x, 2)
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))).astype(np.float32)


@PROJECTIONS.register("umap")
def umap_2d(vectors: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """(N, D) -> (N, 2) float32 UMAP (cosine). PCA to 50 dims first: same map, several times faster."""
    import umap  # heavy import (numba): only when a map is made

    x = np.asarray(vectors, dtype=np.float32)
    if x.shape[1] > 50 and len(x) > 50:
        x = pca_reduce(x, 50)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist,
                        metric="cosine", random_state=seed, low_memory=True, n_jobs=1)
    return reducer.fit_transform(x).astype(np.float32)


def pca_reduce(x: np.ndarray, dims: int) -> np.ndarray:
    """(N, D) -> (N, dims) onto the leading principal axes (eigh of the D x D covariance: fast for N >> D)."""
    x = x - x.mean(0)
    cov = (x.T @ x).astype(np.float64)
    _, vecs = np.linalg.eigh(cov)
    return (x @ vecs[:, ::-1][:, :dims]).astype(np.float32)


def project_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0) -> np.ndarray:
    """Project with `method` ('auto' = UMAP, or PCA below UMAP_MIN_POINTS points)."""
    if method == "auto":
        method = "umap" if len(vectors) >= UMAP_MIN_POINTS else "pca"
    return PROJECTIONS.get(method)(vectors, seed=seed)
