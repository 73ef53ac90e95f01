"""k-center greedy (Sener & Savarese, 2018, "Active Learning for Convolutional Neural Networks: A
Core-Set Approach"): repeatedly take the point farthest from everything chosen so far, which
minimises the coverage radius within a factor of 2 of optimal.

Pick it when the selection must reach every corner of the data (rare modes, edge cases, a
labelling budget that has to see everything once). It favours outliers: drop junk first
(`curate.quality.scores.image_scores`).

Exact acceleration. Plain greedy reads all N vectors once per pick (a memory-bound matrix-vector
product: 10,000 picks from 1,000,000 vectors are 10,000 passes over 512 MB). Here every point
keeps an upper bound on its distance to the chosen set (min distances only shrink as centres
are added) and the number of centres already applied to it. Each round:
  1. take the m points with the largest bounds and bring them up to date (small matrix products
     against the centres added since their last update); U, the (m+1)-th largest bound, is an
     upper bound for every other point (if none of the m then reaches U, take 4x more);
  2. run the greedy among these candidates alone, accepting the best one while its distance is
     >= U (and >= the best candidate left out): no other point can beat it, so this is exactly
     the pick full greedy makes, ties aside.
Points far below the current radius are never touched again, and the rest are updated in blocks
by matrix products: on clustered 128-d data ~10x less arithmetic than plain greedy, all of it
compute-bound.
"""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES

CANDIDATES = 1024  # m: candidates per round; more accept more picks per round, at a cost per pick
ACTIVE = 32_768  # rows tracked as possible candidates between full scans of the bounds
CHUNK_BYTES = 16 * 2**20  # bound on each (rows x centres) block of distances (cache-sized)
EXACT_PAIRS = 10**9  # coverage_radius computes every distance up to this many point-centre pairs
_DONE = np.iinfo(np.int64).max  # version of chosen rows: never refreshed


@STRATEGIES.register("kcenter")
def kcenter_greedy(vectors: np.ndarray, n: int, seed: int = 0, start: int | None = None,
                   include: np.ndarray | None = None, candidates: int = CANDIDATES) -> np.ndarray:
    """Greedy farthest-point ranking under Euclidean distance, (n,) int64.

    First pick: `start`, else the farthest point from the `include` rows (already chosen: they
    count as centres and are not returned), else the point nearest the mean (a typical image,
    rather than an outlier). `seed` is unused: the ranking is deterministic.
    """
    import torch  # lazy: keeps `import curate` light for the app

    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    include = _as_rows(include)
    n = min(int(n), len(x) - len(include))
    if n <= 0:
        return np.empty(0, np.int64)
    state = _Farthest(x, len(include) + n)
    if len(include):
        state.add_everywhere(include)
    if start is not None:
        first = int(start)
    elif len(include):
        first = int(state.bound.argmax())
    else:
        first = _nearest_to_mean(x)
    state.add_everywhere(np.array([first]))
    while state.count < len(include) + n:
        state.round(len(include) + n - state.count, int(candidates))
    return state.centres[len(include):].numpy().copy()


class _Farthest:
    """Bounds on squared distances to the chosen centres, brought up to date lazily."""

    def __init__(self, x, capacity: int):
        import torch

        self.x, self.sq = x, (x * x).sum(1)
        self.bound = torch.full((len(x),), float("inf"))  # >= true min squared distance; -1: chosen
        self.version = torch.zeros(len(x), dtype=torch.int64)  # centres applied to bound[i]
        self.centres = torch.empty(capacity, dtype=torch.int64)
        self.neg2c = torch.empty(capacity, x.shape[1])  # -2 * centre vectors, contiguous (no gathers)
        self.csq = torch.empty(1, capacity)  # squared norms of the centres
        self.count = 0
        self.active, self.floor = None, float("-inf")  # see _active

    def append(self, rows) -> None:
        import torch

        rows = torch.as_tensor(rows, dtype=torch.int64)
        self.centres[self.count:self.count + len(rows)] = rows
        self.neg2c[self.count:self.count + len(rows)] = self.x[rows] * -2
        self.csq[0, self.count:self.count + len(rows)] = self.sq[rows]
        self.count += len(rows)

    def add_everywhere(self, rows: np.ndarray) -> None:
        """Add centres and update every point (the first centre, the include rows)."""
        start = self.count
        self.append(rows)
        self.bound.copy_(self.bound.minimum(self._min_d2(None, start)))
        self.version[self.version != _DONE] = self.count
        self.bound[rows], self.version[rows] = -1.0, _DONE

    def refresh(self, rows) -> None:
        """Bring bound[rows] up to date, grouping rows whose lag is within a factor 2 (<= 2x waste)."""
        import torch

        lag = self.count - self.version[rows]
        rows, lag = rows[lag > 0], lag[lag > 0]
        if not len(rows):
            return
        group = torch.log2(lag.double()).floor_().long()
        for g in torch.unique(group).tolist():
            sub = rows[group == g]
            d2 = self._min_d2(sub, int(self.version[sub].min()))
            self.bound[sub] = torch.minimum(self.bound[sub], d2)
        self.version[rows] = self.count

    def round(self, budget: int, m: int) -> None:
        """Append up to `budget` (at least one) exact greedy picks to self.centres."""
        import torch

        cand, upper = self._candidates(m)
        values, order = torch.topk(self.bound[cand], min(m + 1, len(cand)))
        if len(cand) > m:
            upper = max(upper, float(values[m]))  # the best candidate left out of the greedy
        cand, values = cand[order[:m]], values[:m].clone()
        xc, sqc = self.x[cand], self.sq[cand]
        accepted: list[int] = []
        while len(accepted) < budget:
            best = int(values.argmax())
            if accepted and float(values[best]) < upper:
                break  # a point outside the candidates may now be farther
            accepted.append(best)
            d2 = (sqc - 2 * (xc @ xc[best]) + sqc[best]).clamp_(min=0)
            torch.minimum(values, d2, out=values)
            values[best] = -1.0
        picks = cand[torch.as_tensor(accepted)]
        self.append(picks)
        self.bound[cand], self.version[cand] = values, self.count
        self.version[picks] = _DONE

    def _candidates(self, m: int):
        """(rows with up-to-date bounds, U): the best of them is >= U >= every other point's bound."""
        import torch

        k = m
        while True:
            active = self._active(k)
            top_values, top = torch.topk(self.bound[active], min(k + 1, len(active)))
            upper = max(float(top_values[k]) if len(top) > k else float("-inf"), self.floor)
            cand = active[top[:k]]
            self.refresh(cand)
            if float(self.bound[cand].max()) >= upper:
                return cand, upper
            k *= 4  # the stale bounds all fell below U: look deeper

    def _active(self, k: int):
        """Rows whose bound is >= self.floor, a bound for all others; more than k of them, so
        that each round's top-k search scans a short list rather than all N bounds."""
        import torch

        size = min(len(self.x), max(ACTIVE, 4 * k))
        if self.active is not None:
            self.active = self.active[self.bound[self.active] >= self.floor]
        if self.active is None or len(self.active) <= k or len(self.active) > 4 * size:
            values, rows = torch.topk(self.bound, min(size + 1, len(self.x)))
            self.active, self.floor = rows[:size], float(values[size]) if len(rows) > size else float("-inf")
        return self.active

    def _min_d2(self, rows, oldest: int):
        """Squared distance of each of `rows` (None: all) to its nearest centre from number
        `oldest` on, (len(rows),), computed in blocks of at most CHUNK_BYTES."""
        import torch

        neg2c_t, sqc = self.neg2c[oldest:self.count].T, self.csq[:, oldest:self.count]
        total = len(self.x) if rows is None else len(rows)
        out = torch.empty(total)
        step = max(256, CHUNK_BYTES // (4 * neg2c_t.shape[1]))
        for lo in range(0, total, step):
            hi = min(lo + step, total)
            r = slice(lo, hi) if rows is None else rows[lo:hi]
            out[lo:hi] = torch.addmm(sqc, self.x[r], neg2c_t).amin(1).add_(self.sq[r]).clamp_(min=0)
        return out


def _nearest_to_mean(x) -> int:
    """Row nearest the mean, in row blocks (no N x D temporary)."""
    import torch

    mean, step = x.mean(0), max(1, CHUNK_BYTES // (4 * x.shape[1]))
    d2 = torch.cat([((x[lo:lo + step] - mean) ** 2).sum(1) for lo in range(0, len(x), step)])
    return int(d2.argmin())


def _as_rows(rows) -> np.ndarray:
    return np.unique(np.asarray(rows, dtype=np.int64)) if rows is not None else np.empty(0, np.int64)


def coverage_radius(vectors: np.ndarray, centres: np.ndarray, nprobe: int = 8) -> float:
    """Largest distance from any point to its nearest centre (what k-center minimises), exact.

    Small problems: all distances, in blocks of at most CHUNK_BYTES. Large ones (1M points x
    10k centres is 1.3e12 multiply-adds): every point first gets an upper bound, its distance to
    the nearest centre among those in the `nprobe` k-means cells of centres nearest to its own
    cell (usually the true nearest); then only points whose bound exceeds the largest exact
    value found so far are checked against all centres, largest bounds first.
    """
    import torch

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    centres = np.asarray(centres, dtype=np.int64)
    if len(x) * len(centres) <= EXACT_PAIRS or len(centres) < 64:
        state = _Farthest(torch.from_numpy(x), len(centres))
        state.append(centres)
        return float(state._min_d2(None, 0).max().sqrt())
    import faiss

    c = np.ascontiguousarray(x[centres])
    bound = _nearest_centre_bound(x, c, nprobe)
    order = np.argsort(-bound, kind="stable")
    radius2 = 0.0
    for lo in range(0, len(order), 4096):
        if bound[order[lo]] <= radius2:
            break  # every remaining point is at most its bound away from a centre
        d2 = faiss.knn(x[order[lo:lo + 4096]], c, 1, metric=faiss.METRIC_L2)[0]
        radius2 = max(radius2, float(d2.max()))
    return float(np.sqrt(max(radius2, 0.0)))


def _nearest_centre_bound(x: np.ndarray, c: np.ndarray, nprobe: int) -> np.ndarray:
    """(N,) squared distance of each point to a nearby centre (>= to its nearest one)."""
    import faiss

    cells = max(1, round(np.sqrt(len(c))))
    km = faiss.Kmeans(c.shape[1], cells, niter=10, seed=0, min_points_per_centroid=1)
    km.train(c)
    centre_cell = km.index.search(c, 1)[1][:, 0]
    point_cell = km.index.search(x, 1)[1][:, 0]
    near = km.index.search(km.centroids, min(nprobe, cells))[1]
    by_cell = [np.flatnonzero(centre_cell == k) for k in range(cells)]
    order = np.argsort(point_cell, kind="stable")
    starts = np.searchsorted(point_cell[order], np.arange(cells + 1))
    bound = np.full(len(x), np.inf, dtype=np.float32)
    for k in range(cells):
        rows = order[starts[k]:starts[k + 1]]
        pool = np.concatenate([by_cell[j] for j in near[k] if j >= 0])
        if len(rows) and len(pool):
            bound[rows] = faiss.knn(x[rows], c[pool], 1, metric=faiss.METRIC_L2)[0][:, 0]
    return bound
