"""Inner-product FAISS indexes over L2-normalised vectors (inner product = cosine similarity)."""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import faiss
import numpy as np

from curate import storage

EXACT_MAX = 100_000  # up to here a flat index answers in milliseconds and is exact
FEW_QUERIES = 16  # below this, one thread: OpenMP start-up costs more than it saves (5 ms vs 27 ms at 50k, measured)


def choose_factory(n: int) -> str:
    """Exact (flat) for small corpora; IVF beyond EXACT_MAX."""
    return "IDMap2,Flat" if n <= EXACT_MAX else ivf_factory(n)


def ivf_factory(n: int) -> str:
    """IVF with ~4*sqrt(N) lists (a power of two): FAISS's rule of thumb for N up to ~10M."""
    return f"IVF{2 ** round(math.log2(4 * math.sqrt(n)))},Flat"


def default_nprobe(factory: str) -> int:
    if not factory.startswith("IVF"):
        return 1
    nlist = int(factory[3:].split(",")[0])
    return max(16, nlist // 32)


def build_index(vectors: np.ndarray, ids: np.ndarray, factory: str | None = None, seed: int = 0) -> tuple[faiss.Index, dict]:
    """Index `vectors` (N, D) float32 under `ids` (N,) int64. Returns (index, sidecar dict)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    factory = factory or choose_factory(len(vectors))
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(len(vectors), size=min(len(vectors), 256 * index.nlist), replace=False)]
        index.train(sample)
    index.add_with_ids(vectors, ids)
    nprobe = default_nprobe(factory)
    if nprobe > 1:
        faiss.extract_index_ivf(index).nprobe = nprobe
    return index, {"factory": factory, "metric": "inner_product", "n": int(len(ids)), "d": int(vectors.shape[1]),
                   "nprobe": nprobe}


def search(index: faiss.Index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
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


def save_index(index: faiss.Index, sidecar: dict, path: Path) -> None:
    with storage.atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    storage.write_json(path.with_suffix(".json"), sidecar)


def load_index(path: Path) -> faiss.Index:
    index = faiss.read_index(str(path))
    meta = storage.read_json(path.with_suffix(".json"))
    if meta.get("nprobe", 1) > 1:
        faiss.extract_index_ivf(index).nprobe = meta["nprobe"]
    return index
