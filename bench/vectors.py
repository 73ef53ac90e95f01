"""Vectors for the search, map and selection benchmarks: a workspace's real embeddings, or a
synthetic stand-in with cluster structure (stated in every result)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from curate.steps.index import indexed_rows
from curate.workspace import Workspace

SYNTHETIC_DIM = 512  # ResNet-18's feature width
SYNTHETIC_CLUSTERS = 100
SYNTHETIC_SPREAD = 1.0  # noise norm / centre norm: cosine within a cluster ~0.5, across ~0
SYNTHETIC_BRIDGES = 0.1  # fraction of points blended between two clusters


def clustered_vectors(n: int, d: int = SYNTHETIC_DIM, clusters: int = SYNTHETIC_CLUSTERS,
                      spread: float = SYNTHETIC_SPREAD, bridges: float = SYNTHETIC_BRIDGES,
                      seed: int = 0) -> np.ndarray:
    """(n, d) float32 L2-normalised: Gaussian blobs around `clusters` random unit centres, with a
    fraction `bridges` of points on the segment between two centres.

    Uniform random vectors would make every neighbour list arbitrary (all cosines ~0), which
    matches no real embedding; pure blobs give a kNN graph of disconnected islands (UMAP's
    spectral initialisation fails on it). Bridges stand in for ambiguous images.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    first, second = rng.integers(0, clusters, n), rng.integers(0, clusters, n)
    weight = np.where(rng.random(n) < bridges, rng.random(n), 1.0).astype(np.float32)[:, None]
    x = weight * centres[first] + (1 - weight) * centres[second]
    x += rng.standard_normal((n, d), dtype=np.float32) * (spread / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def workspace_vectors(path: Path) -> np.ndarray:
    """(N, D) float32 embeddings of a workspace's indexed images (rows with an embedding)."""
    ws = Workspace(Path(path)).require()
    return np.ascontiguousarray(np.asarray(ws.embeddings())[indexed_rows(ws)], dtype=np.float32)


def subsample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n rows of x (all of them, in order, when n >= len(x))."""
    if n >= len(x):
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def describe(workspace: Path | None) -> str:
    if workspace is not None:
        return f"real embeddings from workspace {workspace}"
    return (f"synthetic vectors: {SYNTHETIC_DIM}-d L2-normalised, {SYNTHETIC_CLUSTERS} Gaussian clusters "
            f"(noise/centre norm {SYNTHETIC_SPREAD}, {SYNTHETIC_BRIDGES:.0%} of points between two clusters)")
