"""2-D projections for the map view. UMAP by default; PCA for tiny sets (UMAP needs neighbours);
t-SNE (openTSNE, FFT-accelerated) as the SSL literature draws its embedding figures."""
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
UMAP_FIT_MAX = 50_000  # above: UMAP is fitted on a sample this size and the rest placed by their neighbours
TSNE_FIT_MAX = 20_000  # t-SNE's fit is slower than UMAP's per point: sample and place beyond this
PLACE_K = 10


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
            knn: tuple[np.ndarray, np.ndarray] | None = None, fit_max: int = UMAP_FIT_MAX) -> np.ndarray:
    """(N, D) -> (N, 2) float32 UMAP (cosine). PCA to 50 dims first: same map, several times faster.

    `knn` (sims, ids), each (N, >= n_neighbors - 1), row positions without the row itself (-1:
    none): the neighbours UMAP would otherwise search for (a workspace's shared k-NN graph, in the
    full embedding space). UMAP uses them from UMAP_EXACT_BELOW points; below, it compares all pairs.
    """
    import umap  # heavy import (numba): only when a map is made

    x = np.asarray(vectors, dtype=np.float32)
    if x.shape[1] > 50 and len(x) > 50:
        x = pca_reduce(x, 50)
    if len(x) > fit_max:  # the fit grows with N; the placement is matrix products (bench.map_scale)
        return umap_sample_and_place(x, seed, n_neighbors, min_dist, fit_max)
    n_neighbors = min(n_neighbors, len(x) - 1)
    precomputed = (None, None, None)
    if knn is not None and len(x) >= UMAP_EXACT_BELOW and knn[1].shape[1] >= n_neighbors - 1:
        precomputed = umap_neighbours(*knn, n_neighbors)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        random_state=seed, low_memory=True, n_jobs=1, precomputed_knn=precomputed)
    with warnings.catch_warnings():  # "no search index: transform unavailable" - the map never transforms
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return reducer.fit_transform(x).astype(np.float32)


@PROJECTIONS.register("tsne")
def tsne_2d(vectors: np.ndarray, seed: int = 0, perplexity: float = 30.0, fit_max: int = TSNE_FIT_MAX) -> np.ndarray:
    """(N, D) -> (N, 2) float32 t-SNE (cosine, openTSNE's FFT gradients, PCA start). PCA to 50 dims
    first, as for UMAP; beyond `fit_max` rows, fitted on a sample and the rest placed by neighbours."""
    from openTSNE import TSNE  # only when a t-SNE map is made (its INFO chatter: curate.cli.configure_logging)

    x = np.asarray(vectors, dtype=np.float32)
    if len(x) < 4:
        return pca_2d(x, seed)
    if x.shape[1] > 50 and len(x) > 50:
        x = pca_reduce(x, 50)
    if len(x) > fit_max:
        return sample_and_place(x, seed, fit_max, lambda rows: tsne_2d(rows, seed, perplexity, fit_max))
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), metric="cosine", n_jobs=1,
                random_state=seed, verbose=False)
    return np.asarray(tsne.fit(x), dtype=np.float32)


def umap_sample_and_place(x: np.ndarray, seed: int, n_neighbors: int, min_dist: float,
                          fit_max: int = UMAP_FIT_MAX) -> np.ndarray:
    """UMAP of `fit_max` random rows (their exact k-NN from FAISS), the rest placed by `sample_and_place`."""
    from curate.quality.scores import knn as nearest

    return sample_and_place(x, seed, fit_max, lambda rows: umap_2d(
        rows, seed, n_neighbors, min_dist, knn=nearest(unit(rows), n_neighbors, exact=True)))


def sample_and_place(x: np.ndarray, seed: int, fit_max: int, fit) -> np.ndarray:
    """`fit` (rows -> (n, 2)) on `fit_max` random rows; every other row is put where its PLACE_K nearest
    sample rows are (`place_by_neighbours`), which is where umap-learn's and openTSNE's own `transform`
    start before they refine. Cost: one fit of fixed size plus N x sample matrix products."""
    sample = np.sort(np.random.default_rng(seed).choice(len(x), fit_max, replace=False))
    fitted = fit(x[sample])
    out = np.empty((len(x), 2), np.float32)
    out[sample] = fitted
    rest = np.setdiff1d(np.arange(len(x)), sample)
    out[rest] = place_by_neighbours(x[rest], x[sample], fitted)
    return out


def place_by_neighbours(rows: np.ndarray, sample: np.ndarray, sample_xy: np.ndarray, k: int = PLACE_K,
                        block: int = 65_536) -> np.ndarray:
    """(M, D) rows -> (M, 2): the mean map position of each row's k most cosine-similar sample rows,
    weighted by that similarity (FAISS exact search, in blocks)."""
    import faiss

    base = unit(sample)
    out = np.empty((len(rows), 2), np.float32)
    for start in range(0, len(rows), block):
        sims, ids = faiss.knn(unit(rows[start:start + block]), base, k, metric=faiss.METRIC_INNER_PRODUCT)
        weights = np.clip(sims, 1e-6, None)
        out[start:start + block] = (weights[:, :, None] * sample_xy[ids]).sum(1) / weights.sum(1, keepdims=True)
    return out


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as contiguous float32 (zero rows stay zero)."""
    x = np.ascontiguousarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


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


def resolved(method: str, n: int) -> str:
    """The projection 'auto' means for n points: UMAP, or PCA below UMAP_MIN_POINTS."""
    return ("umap" if n >= UMAP_MIN_POINTS else "pca") if method == "auto" else method


def takes_neighbours(method: str, n: int) -> bool:
    """Whether `method` for n points uses a given k-NN graph (so a caller knows whether to load one)."""
    return "knn" in inspect.signature(PROJECTIONS.get(resolved(method, n))).parameters


def project_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0,
               knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Project with `method` ('auto' = UMAP, or PCA below UMAP_MIN_POINTS points); `knn` (sims, ids)
    is handed to projections that search neighbours (see `umap_2d`)."""
    method = resolved(method, len(vectors))
    project = PROJECTIONS.get(method)
    if knn is not None and takes_neighbours(method, len(vectors)):
        return project(vectors, seed=seed, knn=knn)
    return project(vectors, seed=seed)


def project_rows(vectors: np.ndarray, rows: np.ndarray, method: str = "auto", seed: int = 0,
                 knn: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(N, 2) float32 map of the (N, D) `vectors`: `project_2d` of the rows listed in `rows` (ids with
    an embedding), NaN for every other row (the app leaves those out)."""
    out = np.full((len(vectors), 2), np.nan, dtype=np.float32)
    out[rows] = project_2d(np.asarray(vectors[rows], np.float32), method, seed, knn=knn)
    return out
