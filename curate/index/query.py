"""Queries made of several images: "more like these" from a few positives, away from optional negatives.

Vectors are L2-normalised, so an inner product is a cosine similarity. Two ways to combine positives:

    mean  score(x) = cos(x, q) with q the normalised mean of the positives: images like the
          positives' common theme (their "centre of mass")
    max   score(x) = max_p cos(x, p): images like any one of the positives (a union of their
          neighbourhoods), for positives that are different examples of the same wish

Negatives penalise: score(x) -= negative_weight * max_n cos(x, n), so an image very like any one
negative sinks whatever the positives say. Numpy in, numpy out; the index only proposes candidates,
which are then scored exactly from their embeddings.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

MODES = ("mean", "max")
OVERSAMPLE = 4  # with negatives, candidates per wanted result: the penalty reorders the positives' neighbours


def combine_queries(positives: np.ndarray) -> np.ndarray:
    """(D,) unit vector: the normalised mean of (P, D) positives (each normalised first, so none dominates)."""
    x = _unit_rows(positives)
    if not len(x):
        raise ValueError("at least one positive image is needed")
    mean = x.mean(0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise ValueError("the positives cancel out (their mean is ~0): pick images that share something")
    return (mean / norm).astype(np.float32)


def similarity_scores(candidates: np.ndarray, positives: np.ndarray, negatives: np.ndarray | None = None,
                      mode: str = "mean", negative_weight: float = 1.0) -> np.ndarray:
    """(C,) float32 scores of (C, D) candidates against (P, D) positives and optional (M, D) negatives."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    c = np.ascontiguousarray(candidates, dtype=np.float32)
    if mode == "mean":
        score = c @ combine_queries(positives)
    else:
        score = (c @ _unit_rows(positives).T).max(1)
    if negatives is not None and len(negatives) and negative_weight:
        score = score - float(negative_weight) * (c @ _unit_rows(negatives).T).max(1)
    return score.astype(np.float32)


def multi_search(index, embeddings: np.ndarray, positives: np.ndarray, negatives: np.ndarray | None = None,
                 k: int = 10, mode: str = "mean", negative_weight: float = 1.0,
                 exclude: Sequence[int] = (), keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k best-scoring images: (scores (k',), ids (k',)), best first, k' <= k.

    index: a FAISS inner-product index over ids (rows of `embeddings`, (N, D) with row i = id i);
    positives (P, D), negatives (M, D): query vectors; exclude: ids never returned (the query images).
    Without negatives the result is what an exhaustive scan would give (for an exact index): the mean
    query's neighbours, or for `max` the best of each positive's neighbours. With negatives, the
    OVERSAMPLE * k best by the positives alone are rescored. When the index would propose a quarter of
    the corpus or more, every row with an embedding (not all zero) is scored instead: exact, and faster.
    keep: (N,) bool, only these rows may be returned (one kind of item); the index is asked for as many
    more as their share needs, and everything is scored when that still leaves fewer than k.
    """
    from curate.index import search

    if k <= 0:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    has_negatives = negatives is not None and len(negatives) > 0 and bool(negative_weight)
    exclude = np.unique(np.asarray(list(exclude), dtype=np.int64))
    want = k * (OVERSAMPLE if has_negatives else 1) + len(exclude)
    x = np.asarray(embeddings)
    if keep is not None:
        keep = np.asarray(keep, dtype=bool)
        want = int(np.ceil(want / max(float(keep.mean()) if len(keep) else 1.0, 1e-4) * 1.25)) + 8
    queries = combine_queries(positives)[None] if mode == "mean" else _unit_rows(positives)
    negatives = negatives if has_negatives else None
    candidates = None
    if len(queries) * want < len(x) // 4:  # else the candidates would be much of the corpus: scoring it all is cheaper
        _, found = search(index, queries, want)
        candidates = _allowed(np.unique(found[found >= 0]), exclude, keep)
        if keep is not None and len(candidates) < k:
            candidates = None  # too few of the kept rows among the index's proposals: score them all
    if candidates is None:
        candidates = _allowed(np.flatnonzero(np.any(x != 0, axis=1)), exclude, keep)  # no embedding: all zero
    scores = similarity_scores(x[candidates], positives, negatives, mode, negative_weight)
    order = np.lexsort((candidates, -scores))[:k]  # best first, ties by id: deterministic
    return scores[order], candidates[order]


def _allowed(candidates: np.ndarray, exclude: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    candidates = candidates[~np.isin(candidates, exclude)]
    return candidates if keep is None else candidates[keep[candidates]]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if len(x) and (norms < 1e-12).any():
        raise ValueError("a query image has no embedding (an all-zero vector)")
    return x / np.maximum(norms, 1e-12)
