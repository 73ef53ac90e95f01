"""Search: single-query latency (p50/p99), batch throughput and recall@k against exact numpy search,
for the flat index curate picks at this N, the IVF index it picks for large N, and HNSW32.

Queries: with synthetic vectors, held-out draws from the same clusters; with a workspace, indexed
rows (like `curate search --id`), so each query's own row is among its exact neighbours.
"""
from __future__ import annotations

import logging
import time

import faiss
import numpy as np

from bench.context import Context
from bench.measure import percentiles_ms
from bench.report import BenchResult
from bench.vectors import subsample
from curate.index import build_index, choose_factory, exact_search, search, ivf_factory

TITLE = "vector search (latency ms, queries/s, recall@k vs exact)"
EXACT_LATENCY_QUERIES = 200  # exact single-query search reads all N vectors per query: a sample suffices
EXACT_CHUNK = 250  # queries per exact batch (bounds the (Q, N) similarity matrix)
log = logging.getLogger(__name__)


def pool_and_queries(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(base (N, D), queries (Q, D)) float32 per the module docstring."""
    pool, n, q = ctx.vectors, ctx.cfg.search_n, ctx.cfg.queries
    if ctx.cfg.workspace is None:
        return pool[:n], pool[-q:]
    base = subsample(pool, n, ctx.cfg.seed)
    pick = np.random.default_rng(ctx.cfg.seed).choice(len(base), min(q, len(base)), replace=False)
    return base, base[pick]


def exact_neighbours(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """(ids (Q, k), seconds) of curate.index.exact_search over all queries, in chunks."""
    ids = np.arange(len(base))
    t0 = time.perf_counter()
    out = [exact_search(base, ids, queries[i:i + EXACT_CHUNK], k)[1] for i in range(0, len(queries), EXACT_CHUNK)]
    return np.concatenate(out), time.perf_counter() - t0


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over queries of |found ∩ truth| / k."""
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))


def single_query_ms(fn, queries: np.ndarray) -> list[float]:
    """p50 and p99 of fn(one query as (1, D)), in ms."""
    fn(queries[:1])  # first call allocates thread pools and scratch space
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        fn(q[None])
        times[i] = time.perf_counter() - t0
    return percentiles_ms(times)


def measure_index(index, queries: np.ndarray, truth: np.ndarray, k: int) -> dict:
    """Latency, batch queries/s (best of 3) and recall@k of one built index."""
    p50, p99 = single_query_ms(lambda q: search(index, q, k), queries)
    batch_s = min(_timed(lambda: search(index, queries, k)) for _ in range(3))
    found = search(index, queries, k)[1]
    return {"p50 ms": p50, "p99 ms": p99, "batch q/s": len(queries) / batch_s, f"recall@{k}": recall(found, truth)}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def search_settings(index, factory: str, sidecar: dict, ef_values):
    """Yield a label per search-time setting, applying it to `index` first (IVF keeps curate's nprobe)."""
    if "HNSW" in factory:
        for ef in ef_values:
            faiss.ParameterSpace().set_index_parameter(index, "efSearch", ef)
            yield f"efSearch={ef}"
    elif factory.startswith("IVF"):
        yield f"nprobe={sidecar['nprobe']} (curate's)"
    else:
        yield "exact"


def index_rows(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, ef_values) -> list[dict]:
    """Build and measure each index case; HNSW is built once and measured at every efSearch."""
    n, ids, rows = len(base), np.arange(len(base)), []
    cases = [(f"{choose_factory(n)} (curate's pick at N)", choose_factory(n)),
             (f"{ivf_factory(n)} (curate's pick for large N)", ivf_factory(n)),
             ("IDMap,HNSW32", "IDMap,HNSW32")]
    for label, factory in cases:
        log.info("search: building %s on %d vectors", factory, n)
        t0 = time.perf_counter()
        index, sidecar = build_index(base, ids, factory)
        build_s = time.perf_counter() - t0
        for setting in search_settings(index, factory, sidecar, ef_values):
            figures = measure_index(index, queries, truth, k)
            rows.append({"index": label, "setting": setting, "build s": build_s, **figures})
        del index
    return rows


def run(ctx: Context) -> BenchResult:
    base, queries = pool_and_queries(ctx)
    k = ctx.cfg.k
    truth, exact_s = exact_neighbours(base, queries, k)
    ids = np.arange(len(base))
    p50, p99 = single_query_ms(lambda q: exact_search(base, ids, q, k), queries[:EXACT_LATENCY_QUERIES])
    exact_row = {"index": "numpy exact_search (baseline)", "setting": "exact", "build s": None, "p50 ms": p50,
                 "p99 ms": p99, "batch q/s": len(queries) / exact_s, f"recall@{k}": 1.0}
    rows = [exact_row] + index_rows(base, queries, truth, k, ctx.cfg.hnsw_ef)
    for row in rows:
        row["batch vs exact"] = row["batch q/s"] / exact_row["batch q/s"]
    notes = [f"N = {len(base):,} vectors of {base.shape[1]} dims, {len(queries):,} queries, k = {k}; "
             f"{ctx.vectors_source}",
             f"latency: one query per call through curate.index.search (exact baseline: first "
             f"{min(EXACT_LATENCY_QUERIES, len(queries))} queries); batch: all queries in one call, best of 3",
             f"FAISS threads {faiss.omp_get_max_threads()}; build s includes IVF k-means training"]
    return BenchResult(rows, notes)
