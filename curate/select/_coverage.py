"""Lazy greedy maximisation of a sparse coverage objective, shared by facility location and
ProbCover (imported lazily by them: numba compiles on first use).

    F(S) = sum_i max(0, max_{j in S} w(j, i))

where candidate j covers the rows cover[indptr[j]:indptr[j+1]] with weights w >= 0 (CSR arrays,
one row per candidate). F is monotone submodular, so a candidate's gain only shrinks as S grows:
lazy greedy (Minoux, 1978) keeps stale gains in a max-heap as upper bounds and re-evaluates only
the top, giving exactly the plain greedy ranking at a small fraction of the evaluations.
Facility location uses similarities as weights, max coverage (ProbCover) uses 1 for "in my ball".
"""
from __future__ import annotations

import numba
import numpy as np


def lazy_greedy(indptr: np.ndarray, cover: np.ndarray, weight: np.ndarray, n: int, tiebreak: np.ndarray,
                include: np.ndarray | None = None, restart: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(picks (n,) int64, gains (n,) float64): greedy order of candidates 0..len(indptr)-2.

    tiebreak: (N,) distinct int64, lower wins among equal gains (a seeded permutation), which also
    orders the fill once every gain is 0. include: rows already chosen (their coverage counts,
    they are not returned). restart: once every gain is 0, start a fresh covering pass in which
    only the chosen rows themselves count as covered (ProbCover's "next best" after full cover).
    """
    include = np.zeros(0, np.int64) if include is None else np.asarray(include, np.int64)
    return _lazy_greedy(np.asarray(indptr, np.int64), np.asarray(cover, np.int32),
                        np.asarray(weight, np.float32), int(n), np.asarray(tiebreak, np.int64), include, restart)


@numba.njit(cache=True)
def _gain(j, indptr, cover, weight, best):
    g = 0.0
    for e in range(indptr[j], indptr[j + 1]):
        d = weight[e] - best[cover[e]]
        if d > 0:
            g += d
    return g


@numba.njit(cache=True)
def _take(j, indptr, cover, weight, best):
    for e in range(indptr[j], indptr[j + 1]):
        if weight[e] > best[cover[e]]:
            best[cover[e]] = weight[e]


@numba.njit(cache=True)
def _before(ga, ta, gb, tb):
    return ga > gb or (ga == gb and ta < tb)


@numba.njit(cache=True)
def _sift_down(hg, hj, size, pos, tiebreak):
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and _before(hg[child + 1], tiebreak[hj[child + 1]], hg[child], tiebreak[hj[child]]):
            child += 1
        if not _before(hg[child], tiebreak[hj[child]], hg[pos], tiebreak[hj[pos]]):
            return
        hg[pos], hg[child] = hg[child], hg[pos]
        hj[pos], hj[child] = hj[child], hj[pos]
        pos = child


@numba.njit(cache=True)
def _build_heap(chosen, indptr, cover, weight, best, tiebreak):
    hj = np.flatnonzero(~chosen).astype(np.int64)
    hg = np.empty(len(hj), np.float64)
    for h in range(len(hj)):
        hg[h] = _gain(hj[h], indptr, cover, weight, best)
    for pos in range(len(hj) // 2 - 1, -1, -1):
        _sift_down(hg, hj, len(hj), pos, tiebreak)
    return hg, hj


@numba.njit(cache=True)
def _lazy_greedy(indptr, cover, weight, n, tiebreak, include, restart):
    rows = len(indptr) - 1
    best = np.zeros(rows, np.float32)
    chosen = np.zeros(rows, np.bool_)
    for j in include:
        chosen[j] = True
        _take(j, indptr, cover, weight, best)
    hg, hj = _build_heap(chosen, indptr, cover, weight, best, tiebreak)
    size = len(hj)
    picks = np.empty(n, np.int64)
    gains = np.empty(n, np.float64)
    count, restarted_at = 0, -1
    while count < n and size > 0:
        j = hj[0]
        g = _gain(j, indptr, cover, weight, best)
        hg[0] = g
        _sift_down(hg, hj, size, 0, tiebreak)
        if hj[0] != j:
            continue  # its gain fell below another's upper bound: re-evaluate the new top
        if g == 0.0 and restart and count != restarted_at:
            restarted_at = count
            best[:] = 0.0  # everything is covered: a fresh pass, chosen rows cover themselves
            for i in range(rows):
                if chosen[i]:
                    best[i] = 1.0
            hg, hj = _build_heap(chosen, indptr, cover, weight, best, tiebreak)
            size = len(hj)
            continue
        picks[count], gains[count] = j, g
        count += 1
        chosen[j] = True
        _take(j, indptr, cover, weight, best)
        size -= 1
        hg[0], hj[0] = hg[size], hj[size]
        _sift_down(hg, hj, size, 0, tiebreak)
    return picks[:count], gains[:count]
