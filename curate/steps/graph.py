"""The workspace's k-nearest-neighbour graph: each embedded image's k most similar others.

Computed once per embedding generation and kept in knn_graph.npz (rows, sims, ids; sidecar
knn_graph.json), then read by the scores, the duplicate search and the 2-D map instead of each
doing its own all-against-all search. How it is computed grows with N:

    up to EXACT_MAX images   exact (one block of matrix products)
    up to the index's exact  k-means-partitioned blocks (`curate.quality.scores.knn`, recall ~0.97)
    limit
    beyond                   the workspace's own ANN index, queried with every vector in chunks
                             (IVF tuned to its recall target, so the graph has that recall)
"""
from __future__ import annotations

import numpy as np

from curate import storage
from curate.clock import now
from curate.generations import write_sidecar
from curate.index import load_index, search
from curate.progress import Progress, report
from curate.quality.scores import EXACT_MAX, knn
from curate.steps.index import embeddings_generation, indexed_rows
from curate.workspace import Workspace

GRAPH_K = 32  # enough for the scores (10), the map (15), dedup (5), facility location (10) and ProbCover at 1M+ (32)
QUERY_CHUNK = 16_384


def knn_graph(ws: Workspace, k: int = GRAPH_K, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
    """(rows (M,) ids with an embedding, sims (M, k) float32 descending, ids (M, k) int64 neighbour ids,
    -1 where missing); the stored graph when it is of the current embeddings and at least k wide."""
    file, sidecar = ws.knn_graph_file, ws.sidecar(ws.knn_graph_file)
    generation = embeddings_generation(ws)
    if file.exists() and sidecar.exists():
        meta = storage.read_json(sidecar)
        if meta.get("embeddings") == generation and meta.get("k", 0) >= k:
            with np.load(file) as z:
                return z["rows"], z["sims"][:, :k], z["ids"][:, :k]
    rows = indexed_rows(ws)
    k_stored = max(k, GRAPH_K)
    sims, ids, method = _compute(ws, rows, k_stored, progress)
    with storage.atomic_path(file) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, rows=rows, sims=sims, ids=ids)
    write_sidecar(file, {"k": k_stored, "n": int(len(rows)), "method": method, "embeddings": generation,
                         "created": now()}, {ws.embeddings_file.name: generation})
    return rows, sims[:, :k], ids[:, :k]


def _compute(ws: Workspace, rows: np.ndarray, k: int, progress: Progress | None) -> tuple[np.ndarray, np.ndarray, str]:
    vectors = ws.embeddings()
    meta = storage.read_json(ws.sidecar(ws.index_file)) if ws.index_file.exists() else {}
    approximate_index = "IVF" in meta.get("factory", "") and meta.get("embeddings") == embeddings_generation(ws)
    if len(rows) <= EXACT_MAX or not approximate_index:
        sims, pos = knn(np.asarray(vectors[rows], np.float32), min(k, max(len(rows) - 1, 1)))
        ids = np.where(pos >= 0, rows[np.maximum(pos, 0)], -1)
        return _pad(sims, ids, k) + ("exact" if len(rows) <= EXACT_MAX else "partitioned",)
    index = load_index(ws.index_file, vectors)
    sims = np.empty((len(rows), k), np.float32)
    ids = np.empty((len(rows), k), np.int64)
    for start in range(0, len(rows), QUERY_CHUNK):
        part = rows[start:start + QUERY_CHUNK]
        s, i = search(index, np.asarray(vectors[part], np.float32), k + 1)
        sims[start:start + len(part)], ids[start:start + len(part)] = without_self(s, i, part, k)
        report(progress, start + len(part), len(rows), stage="k-NN graph", unit="img")
    return sims, ids, f"index {meta['factory']} (recall@10 {meta.get('recall_at_10', '?')})"


def without_self(sims: np.ndarray, ids: np.ndarray, own: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop each row's own id (or its last column when the search did not return it) -> (Q, k)."""
    is_self = ids == own[:, None]
    is_self[~is_self.any(1), -1] = True
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :ids.shape[1] - 1]
    return _pad(np.take_along_axis(sims, keep, 1), np.take_along_axis(ids, keep, 1), k)


def _pad(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims, ids = sims[:, :k], ids[:, :k]
    if ids.shape[1] < k:
        pad = ((0, 0), (0, k - ids.shape[1]))
        sims, ids = np.pad(sims, pad, constant_values=-1.0), np.pad(ids, pad, constant_values=-1)
    sims = np.where(ids >= 0, sims, -1.0).astype(np.float32)
    return sims, ids.astype(np.int64)


def positions(graph_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Neighbour ids -> their positions in `rows` (-1 for ids not in rows): the graph over a subset."""
    lookup = np.full(max(int(rows.max(initial=-1)), int(graph_ids.max(initial=-1))) + 2, -1, np.int64)
    lookup[rows] = np.arange(len(rows))
    return lookup[graph_ids]  # id -1 reads the last entry, which is -1
