"""Constraints that combine with any selection strategy.

    must-include  rows that are in the selection whatever the strategy says (already labelled
                  images, the app's basket); strategies that take `include=` plan around them
    must-exclude  rows never chosen (images tagged `bad`, another selection)
    pool          a boolean mask of eligible rows (metadata filters: label, size, quality flags)
    balance       a group key per row (label or k-means cluster): each group gets an equal share
                  of the budget (less where a group is small; the rest goes to the others)
    dedup         a cosine threshold: skip a candidate this similar to an image already chosen

The strategy itself only ever sees eligible rows; its ranking is filtered and merged here, so a
new strategy gets every constraint for free.
"""
from __future__ import annotations

import heapq
import inspect
from dataclasses import dataclass

import numpy as np

from curate.select.base import STRATEGIES


@dataclass
class Constraints:
    include: np.ndarray | None = None  # row indices
    exclude: np.ndarray | None = None  # row indices
    pool: np.ndarray | None = None  # (N,) bool
    balance: np.ndarray | None = None  # (N,) group keys
    dedup: float | None = None  # cosine threshold

    def eligible(self, n_rows: int) -> np.ndarray:
        mask = np.ones(n_rows, bool) if self.pool is None else np.asarray(self.pool, bool).copy()
        for rows in (self.include, self.exclude):
            if rows is not None:
                mask[np.asarray(rows, np.int64)] = False
        return mask


def constrained_select(vectors: np.ndarray, n: int, strategy: str = "kcenter", seed: int = 0,
                       constraints: Constraints | None = None, neighbours: tuple | None = None,
                       **params) -> np.ndarray:
    """Row indices of `vectors` in priority order: the must-include rows first, then the strategy's
    picks among eligible rows, honouring balance and dedup. Length min(n, what is available).
    `neighbours` (sims, ids): a k-NN graph of all rows, handed to strategies that take one when
    they rank every row (no filter, include or balance narrows the pool)."""
    c = constraints or Constraints()
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    include = _unique_in_order(c.include)
    if c.exclude is not None:
        include = include[~np.isin(include, np.asarray(c.exclude, np.int64))]
    eligible = c.eligible(len(x))
    budget = max(0, int(n) - len(include))
    if c.balance is None:
        picks = _rank_group(x, np.flatnonzero(eligible), include, budget, strategy, seed, c.dedup,
                            {**params, "neighbours": neighbours} if neighbours is not None else params)
    else:
        picks = _balanced(x, eligible, include, budget, strategy, seed, c, params)
    return np.concatenate([include[:n], picks]).astype(np.int64)


def group_quotas(available: dict, include_counts: dict, total: int) -> dict:
    """Split `total` picks so groups end up as equal as possible (must-includes counted in their
    group), never giving a group more than it has available: each pick goes to the group that
    has fewest so far (water filling)."""
    quotas = {g: 0 for g in available}
    heap = [(include_counts.get(g, 0), i, g) for i, g in enumerate(available) if available[g] > 0]
    heapq.heapify(heap)
    for _ in range(total):
        if not heap:
            break
        count, i, g = heapq.heappop(heap)
        quotas[g] += 1
        if quotas[g] < available[g]:
            heapq.heappush(heap, (count + 1, i, g))
    return quotas


def _balanced(x, eligible, include, budget, strategy, seed, c: Constraints, params) -> np.ndarray:
    keys = np.asarray(c.balance)
    groups = [g for g in dict.fromkeys(keys[eligible].tolist())]
    available = {g: int(np.count_nonzero(eligible & (keys == g))) for g in groups}
    include_counts = {g: int(np.count_nonzero(keys[include] == g)) for g in groups}
    quotas = group_quotas(available, include_counts, budget)
    per_group, chosen = [], include.copy()
    for g in groups:
        rows = np.flatnonzero(eligible & (keys == g))
        picks = _rank_group(x, rows, chosen, quotas[g], strategy, seed, c.dedup, params,
                            plan_around=include[keys[include] == g])
        chosen = np.concatenate([chosen, picks])
        per_group.append(picks)
    return _round_robin(per_group)


def _rank_group(x, rows, chosen, k, strategy, seed, dedup, params, plan_around=None) -> np.ndarray:
    """Top-k of `rows` by the strategy (planning around `plan_around`, default `chosen`), skipping
    near-duplicates of `chosen` and of each other when `dedup` is set."""
    k = min(k, len(rows))
    if k <= 0:
        return np.empty(0, np.int64)
    plan_around = chosen if plan_around is None else plan_around
    want = k if dedup is None else min(len(rows), 2 * k + 16)
    while True:
        ranking = rows[_run_strategy(x, rows, plan_around, want, strategy, seed, params)]
        if dedup is None:
            return ranking
        kept = _skip_near_duplicates(x, ranking, chosen, dedup, k)
        if len(kept) == k or want == len(rows):
            return kept
        want = min(len(rows), 4 * want)


def _run_strategy(x, rows, include, k, strategy, seed, params) -> np.ndarray:
    """The strategy's ranking of `rows` (as positions in `rows`), given included rows if it takes them."""
    fn = STRATEGIES.get(strategy)
    params = dict(params)
    graph = params.pop("neighbours", None)
    if graph is not None and not len(include) and len(rows) == len(x) and "neighbours" in inspect.signature(fn).parameters:
        params["neighbours"] = graph  # the graph is of all rows: valid only when the strategy ranks them all
    if len(include) and "include" in inspect.signature(fn).parameters:
        sub = np.concatenate([x[include], x[rows]])
        picks = np.asarray(fn(sub, k, seed=seed, include=np.arange(len(include)), **params), np.int64)
        picks = picks[picks >= len(include)] - len(include)
    else:
        picks = np.asarray(fn(np.ascontiguousarray(x[rows]), k, seed=seed, **params), np.int64)
    return picks[:k]


def _skip_near_duplicates(x, ranking, chosen, threshold: float, k: int) -> np.ndarray:
    """Walk the ranking, keeping a row unless its cosine to a kept or already chosen row is >= threshold."""
    import faiss

    pool = np.concatenate([np.asarray(chosen, np.int64), ranking])
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x[pool])
    lims, _, nbrs = index.range_search(x[ranking], float(threshold))
    taken = np.zeros(len(pool), bool)
    taken[:len(chosen)] = True
    kept = []
    for i, row in enumerate(ranking):
        if len(kept) == k:
            break
        near = nbrs[lims[i]:lims[i + 1]]
        if not taken[near[near != len(chosen) + i]].any():
            taken[len(chosen) + i] = True
            kept.append(row)
    return np.asarray(kept, np.int64)


def _round_robin(rankings: list[np.ndarray]) -> np.ndarray:
    """Interleave per-group rankings one from each group per round, so every prefix of the result
    is as balanced as the groups allow."""
    if not rankings:
        return np.empty(0, np.int64)
    order = [(i, g, r_i) for g, r in enumerate(rankings) for i, r_i in enumerate(r)]
    return np.asarray([r for *_, r in sorted(order)], np.int64)


def _unique_in_order(rows) -> np.ndarray:
    if rows is None:
        return np.empty(0, np.int64)
    rows = np.asarray(rows, np.int64)
    _, first = np.unique(rows, return_index=True)
    return rows[np.sort(first)]
