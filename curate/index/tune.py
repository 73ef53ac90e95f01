"""Tune an approximate index to a recall target on a held-out sample of its own vectors.

recall@k of one query = |approximate top k & exact top k| / k, the query's own id left out of both
(it is in the index, and finding itself says nothing). The exact neighbours are computed chunk by
chunk over all vectors, so tuning a 10M index never holds them all as floats.
"""
from __future__ import annotations

import time

import faiss
import numpy as np

from curate.index.faiss_index import CHUNK, nlist_of_index, set_search_params
from curate.progress import Progress, report

RECALL_TARGET = 0.95
TUNE_QUERIES = 1000


def exact_neighbours(vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray, queries: np.ndarray,
                     k: int) -> np.ndarray:
    """(Q, k) ids of the k largest inner products of `queries` (Q, D) with vectors[rows] (ids = their ids)."""
    q = np.ascontiguousarray(queries, np.float32)
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, len(rows), CHUNK):
        x = np.ascontiguousarray(vectors[rows[start:start + CHUNK]], np.float32)
        s, i = faiss.knn(q, x, min(k, len(x)), metric=faiss.METRIC_INNER_PRODUCT)
        best_s, best_i = np.hstack([best_s, s]), np.hstack([best_i, ids[start:start + CHUNK][i]])
        top = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, top, 1), np.take_along_axis(best_i, top, 1)
    return best_i


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean over queries of |found[:, :k] & truth[:, :k]| / k (ids; -1 in found never matches)."""
    hits = [len(set(f[:k][f[:k] >= 0]) & set(t[:k])) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k if hits else 1.0


def _without_self(found: np.ndarray, query_ids: np.ndarray, k: int) -> np.ndarray:
    """Each row's ids with its own id removed, cut to k columns (padded with -1)."""
    out = np.full((len(found), k), -1, np.int64)
    for r, (f, own) in enumerate(zip(found, query_ids)):
        f = f[f != own][:k]
        out[r, :len(f)] = f
    return out


def tune_nprobe(index, vectors: np.ndarray, ids: np.ndarray, rows: np.ndarray | None = None, params: dict | None = None,
                target: float = RECALL_TARGET, k: int = 10, queries: int = TUNE_QUERIES, seed: int = 0,
                progress: Progress | None = None) -> dict:
    """The smallest nprobe (powers of two) whose recall@k on `queries` sampled vectors reaches `target`
    (and for a compressed index, the fewest re-scored candidates, doubling `rerank` up to 8x).

    `index` answers for `ids`, whose vectors are vectors[rows]; `params` (the sidecar's search
    parameters, updated and returned) may hold `rerank` and `efSearch`. The search function used is
    the one callers use (`search`, wrapped in `Reranked` when `rerank` is set), so the recall is
    what they get. Returns the parameters with `recall_at_10`, `recall_target`, `tuned_on`, and
    `reached` False when even the widest search misses the target (then nprobe = nlist).
    """
    from curate.index.faiss_index import Reranked, search

    params = dict(params or {})
    ids = np.asarray(ids, np.int64)
    rows = np.arange(len(ids)) if rows is None else np.asarray(rows, np.int64)
    nlist = nlist_of_index(index)
    pick = np.sort(np.random.default_rng(seed).choice(len(ids), size=min(queries, len(ids)), replace=False))
    q = np.ascontiguousarray(vectors[rows[pick]], np.float32)
    truth = _without_self(exact_neighbours(vectors, rows, ids, q, k + 1), ids[pick], k)
    by_id = vectors if np.array_equal(rows, ids) else _IdVectors(vectors, rows, ids)
    tried = []
    # nprobe first (cheap); a compressed index that misses the target with every partition searched
    # re-scores more candidates (its codes rank the true neighbours too low, not out of the lists)
    for rerank in [params["rerank"] * 2 ** i for i in range(4)] if params.get("rerank") else [None]:
        nprobe = 1
        while True:
            trial = {**params, "nprobe": min(nprobe, nlist), **({"rerank": rerank} if rerank else {})}
            if "efSearch" in params:
                trial["efSearch"] = max(64, 2 * trial["nprobe"])
            set_search_params(index, trial)
            searcher = Reranked(index, by_id, rerank) if rerank else index
            start = time.perf_counter()
            found = _without_self(search(searcher, q, k + 1)[1], ids[pick], k)
            ms = 1000 * (time.perf_counter() - start) / len(q)
            recall = recall_at_k(found, truth, k)
            tried.append({"nprobe": trial["nprobe"], **({"rerank": rerank} if rerank else {}),
                          "recall": round(recall, 4), "ms_per_query": round(ms, 3)})
            report(progress, len(tried), len(tried) + 1, stage="index: tuning nprobe", unit="try",
                   recall=round(recall, 3))
            if recall >= target or trial["nprobe"] >= nlist:
                break
            nprobe *= 2
        if recall >= target:
            break
    set_search_params(index, trial)
    return {**trial, "recall_at_10": round(recall, 4), "recall_target": target, "reached": recall >= target,
            "tuned_on": int(len(q)), "tuning": tried}


class _IdVectors:
    """vectors[rows] addressed by id, as `Reranked` expects (row = id) when ids are not row positions."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray):
        self.vectors, self.shape = vectors, (int(ids.max()) + 1 if len(ids) else 0, vectors.shape[1])
        self.row_of = np.full(self.shape[0], -1, np.int64)
        self.row_of[ids] = rows

    def __getitem__(self, wanted: np.ndarray) -> np.ndarray:
        return self.vectors[self.row_of[wanted]]
