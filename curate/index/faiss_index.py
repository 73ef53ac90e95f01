"""Inner-product FAISS indexes over L2-normalised vectors (inner product = cosine similarity).

Built in chunks (a float copy of 10M vectors is never held), trained on a sample, and saved with a
JSON sidecar: the factory string, the search parameters (nprobe, the HNSW quantizer's efSearch)
and, for compressed indexes, how many candidates to re-score exactly (`rerank`).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import faiss
import numpy as np

from curate import storage
from curate.index.plan import DEFAULT_MEMORY, EXACT_MAX, ivf_lists, nlist_of, plan_index
from curate.progress import Progress, report

FEW_QUERIES = 16  # below this, one thread: OpenMP start-up costs more than it saves (5 ms vs 27 ms at 50k, measured)
CHUNK = 65_536  # vectors added (and read from disk) at a time
TRAIN_PER_LIST = 40  # k-means training vectors per partition (FAISS warns below 39)
TRAIN_MIN = 20_000  # product quantisers need ~10k vectors for their 256 centroids per sub-space
RERANK = 10  # a compressed index proposes RERANK x k candidates; their stored vectors decide the order
__all__ = ["EXACT_MAX", "build_index", "choose_factory", "exact_search", "ivf_factory", "load_index", "save_index",
           "search", "Reranked", "set_search_params"]


def choose_factory(n: int, d: int = 512, memory: int = DEFAULT_MEMORY) -> str:
    """Exact (flat) for small corpora; partitioned, then compressed, as N grows (curate.index.plan)."""
    return plan_index(n, d, memory).factory


def ivf_factory(n: int) -> str:
    """A partitioned, uncompressed index for n vectors."""
    return f"IVF{ivf_lists(n)},Flat"


def default_params(factory: str) -> dict:
    """Search parameters before tuning: a thirty-second of the partitions, at least 16."""
    nlist = nlist_of(factory)
    if not nlist:
        return {"nprobe": 1}
    params = {"nprobe": min(nlist, max(16, nlist // 32))}
    if "HNSW" in factory:
        params["efSearch"] = max(64, 2 * params["nprobe"])
    if "PQ" in factory:
        params["rerank"] = RERANK
    return params


def set_search_params(index: faiss.Index, params: dict) -> None:
    """Apply nprobe / efSearch of a sidecar to an index (through any OPQ or id-map wrapper)."""
    space = faiss.ParameterSpace()
    if params.get("nprobe", 1) > 1 or nlist_of_index(index):
        space.set_index_parameter(index, "nprobe", int(params.get("nprobe", 1)))
    if "efSearch" in params:
        space.set_index_parameter(index, "quantizer_efSearch", int(params["efSearch"]))


def nlist_of_index(index: faiss.Index) -> int:
    try:
        return faiss.extract_index_ivf(index).nlist
    except RuntimeError:  # not an IVF index
        return 0


def build_index(vectors: np.ndarray, ids: np.ndarray, factory: str | None = None, seed: int = 0,
                rows: np.ndarray | None = None, progress: Progress | None = None) -> tuple[faiss.Index, dict]:
    """Index vectors under `ids` (N,) int64. Returns (index, sidecar dict).

    `vectors` (M, D) float32, may be a memmap: the vector of ids[i] is vectors[rows[i]] (default
    rows = range(N), i.e. vectors aligned with ids). Read in chunks of CHUNK rows.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    rows = np.arange(len(ids)) if rows is None else np.asarray(rows, np.int64)
    d = vectors.shape[1]
    factory = factory or choose_factory(len(ids), d)
    index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        nlist = nlist_of(factory)
        faiss.extract_index_ivf(index).cp.niter = 10  # the partitions need not be optimal, only balanced
        size = min(len(rows), max(TRAIN_MIN, TRAIN_PER_LIST * nlist))
        sample = np.sort(np.random.default_rng(seed).choice(len(rows), size=size, replace=False))
        report(progress, 0, len(ids), stage="index: training", unit="vec")
        index.train(_read(vectors, rows[sample]))
    for start in range(0, len(ids), CHUNK):
        index.add_with_ids(_read(vectors, rows[start:start + CHUNK]), ids[start:start + CHUNK])
        report(progress, min(start + CHUNK, len(ids)), len(ids), stage="index", unit="vec")
    params = default_params(factory)
    set_search_params(index, params)
    return index, {"factory": factory, "metric": "inner_product", "n": int(len(ids)), "d": int(d), **params}


def _read(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


class Reranked:
    """A compressed index whose candidates are re-scored with their stored vectors.

    `vectors` (M, D), row = id (the workspace's embeddings.npy, a memmap): the index proposes
    `factor` x k candidates, exact inner products order them. Searches like a FAISS index.
    """

    def __init__(self, index: faiss.Index, vectors: np.ndarray, factor: int = RERANK):
        self.index, self.vectors, self.factor = index, vectors, factor

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, cand = self.index.search(queries, min(self.index.ntotal, k * self.factor))
        return self.rescore(queries, cand, k)

    def rescore(self, queries: np.ndarray, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best k of candidate ids `cand` (Q, C; -1 = none) by exact inner product with `queries`."""
        found = np.maximum(cand, 0)
        order = np.argsort(found.ravel(), kind="stable")  # sorted reads of the memmap
        flat = np.empty((found.size, self.vectors.shape[1]), np.float32)
        flat[order] = self.vectors[found.ravel()[order]]
        sims = np.einsum("qkd,qd->qk", flat.reshape(*found.shape, -1), queries)
        sims[cand < 0] = -np.inf
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        sims, ids = np.take_along_axis(sims, top, 1), np.take_along_axis(cand, top, 1)
        sims[ids < 0] = -1.0
        return sims.astype(np.float32), ids


def search(index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, ids), each (Q, k); missing neighbours have id -1."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    with _omp_threads(1) if len(queries) < FEW_QUERIES else contextlib.nullcontext():
        return index.search(queries, min(k, index.ntotal))


@contextlib.contextmanager
def _omp_threads(n: int):
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def exact_search(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force numpy reference: (similarities, ids) of the k largest inner products."""
    sims = np.atleast_2d(queries) @ vectors.T
    k = min(k, len(ids))
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(sims, top, 1).argsort(1)[:, ::-1]
    top = np.take_along_axis(top, order, 1)
    return np.take_along_axis(sims, top, 1), ids[top]


def save_index(index: faiss.Index, sidecar: dict, path: Path, inputs: dict | None = None) -> None:
    """The index, then its sidecar (with a generation: `curate.generations`; `inputs` as read)."""
    from curate.generations import write_sidecar

    with storage.atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    write_sidecar(path, {**sidecar, "bytes": path.stat().st_size}, inputs)


def load_index(path: Path, vectors: np.ndarray | None = None):
    """The saved index with its sidecar's search parameters; a compressed one is wrapped in `Reranked`
    when its stored `vectors` (row = id) are given."""
    index = faiss.read_index(str(path))
    meta = storage.read_json(path.with_suffix(".json"))
    set_search_params(index, meta)
    if meta.get("rerank") and vectors is not None:
        return Reranked(index, vectors, int(meta["rerank"]))
    return index
