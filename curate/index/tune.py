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
    parameters, updated and returned) may hold `rerank` and `efSearch`. The search is the one callers
    use (`search`, re-scored as `Reranked` does when `rerank` is set), so the recall is what they get.
    Returns the parameters with `recall_at_10`, `recall_target`, `tuned_on`, `tuning` (every setting
    tried; the re-rank factors of one nprobe share its search time), and `reached` False when even the
    widest search misses the target (then the setting with the highest recall).
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
    # A compressed index re-scores rerank x k candidates. The candidates of a larger factor begin with those
    # of a smaller one (the codes' own order), so one search per nprobe, for the largest factor, scores
    # every factor. The choice is the smallest nprobe at the smallest factor, then at twice it, and so on:
    # with every partition searched, a miss means the codes rank the true neighbours too low.
    factors = [params["rerank"] * 2 ** i for i in range(4)] if params.get("rerank") else [None]
    reranked = Reranked(index, by_id, factors[-1]) if factors[0] else None
    tried, nprobe = [], 1
    while True:
        trial = {**params, "nprobe": min(nprobe, nlist)}
        if "efSearch" in params:
            trial["efSearch"] = max(64, 2 * trial["nprobe"])
        set_search_params(index, trial)
        start = time.perf_counter()
        if reranked is None:
            recalls = {None: recall_at_k(_without_self(search(index, q, k + 1)[1], ids[pick], k), truth, k)}
        else:
            cand = search(index, q, min(index.ntotal, (k + 1) * factors[-1]))[1]
            recalls = {f: recall_at_k(_without_self(reranked.rescore(q, cand[:, :(k + 1) * f], k + 1)[1], ids[pick],
                                                    k), truth, k) for f in factors}
        ms = 1000 * (time.perf_counter() - start) / len(q)
        tried += [{"nprobe": trial["nprobe"], **({"rerank": f} if f else {}), "recall": round(r, 4),
                   "ms_per_query": round(ms, 3)} for f, r in recalls.items()]
        report(progress, len(tried), len(tried) + len(factors), stage="index: tuning nprobe", unit="try",
               recall=round(max(recalls.values()), 3))
        if recalls[factors[0]] >= target or trial["nprobe"] >= nlist:
            break
        nprobe *= 2
    chosen = _cheapest(tried, target)
    trial = {**trial, "nprobe": chosen["nprobe"], **({"rerank": chosen["rerank"]} if "rerank" in chosen else {})}
    if "efSearch" in params:
        trial["efSearch"] = max(64, 2 * trial["nprobe"])
    set_search_params(index, trial)
    recall = chosen["recall"]
    return {**trial, "recall_at_10": round(recall, 4), "recall_target": target, "reached": recall >= target,
            "tuned_on": int(len(q)), "tuning": tried}


def _cheapest(tried: list[dict], target: float) -> dict:
    """Of the settings tried, the smallest re-rank factor that reaches `target` with its smallest nprobe;
    when none does, the one with the highest recall (the widest search)."""
    reached = [t for t in tried if t["recall"] >= target]
    if not reached:
        return max(tried, key=lambda t: (t["recall"], -t["nprobe"]))
    return min(reached, key=lambda t: (t.get("rerank") or 0, t["nprobe"]))


class _IdVectors:
    """vectors[rows] addressed by id, as `Reranked` expects (row = id) when ids are not row positions."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray):
        self.vectors, self.shape = vectors, (int(ids.max()) + 1 if len(ids) else 0, vectors.shape[1])
        self.row_of = np.full(self.shape[0], -1, np.int64)
        self.row_of[ids] = rows

    def __getitem__(self, wanted: np.ndarray) -> np.ndarray:
        return self.vectors[self.row_of[wanted]]
