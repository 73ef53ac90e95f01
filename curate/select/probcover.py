"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, 2022, "Active Learning Through a Covering Lens"):
greedy maximum coverage of delta-balls. Each image covers the images within cosine distance
delta of it; each pick is the image whose ball holds the most images not yet covered.

delta comes from the data, as in the paper: the largest delta at which >= 95% of balls are
"pure", i.e. hold only images of their centre's k-means pseudo-class; but at least the median
distance to the 20th nearest neighbour. The floor matters for embeddings whose k-means clusters
are not well separated (a briefly trained encoder): there the purity rule alone picks a delta
at which the median ball holds only its centre, and the greedy then chases small tight clumps
(on CIFAR-10 with a 5-minute encoder: 3-4 points below random at 100 picks, +3 with the floor,
bench/selection_lift.py). Balls are capped at the
`max_degree` nearest images (by default as many as 20M entries in all allow, 32 to 1,000, so
memory stays bounded at 1M images); purity is measured on the same capped balls. Once everything
is covered, a fresh covering pass starts in which only the chosen images count as covered (the
paper falls back to random picks there).

Pick it for small labelling budgets (tens to a few thousand labels): it takes the centres of
dense, well-separated regions first, where a label teaches most. For large budgets prefer
`facility_location` or `typiclust`.
"""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES

PURITY = 0.95  # the paper's alpha
MIN_BALL = 20  # delta is at least the median distance to this nearest neighbour
EDGE_BUDGET = 20_000_000  # ball entries kept in memory (~240 MB of similarities and ids)
MAX_BALL = 1_000


def auto_max_degree(n_rows: int) -> int:
    """Cap on listed neighbours per ball: as many as EDGE_BUDGET allows, 32..1,000. The cap must be
    well above typical ball sizes for the greedy to tell dense regions apart: with every ball
    capped at the same size the first picks are ties, broken at random."""
    return int(min(MAX_BALL, max(32, EDGE_BUDGET // max(n_rows, 1))))


@STRATEGIES.register("probcover")
def probcover(vectors: np.ndarray, n: int, seed: int = 0, delta: float | None = None, classes: int = 10,
              max_degree: int | None = None, purity: float = PURITY, include: np.ndarray | None = None,
              neighbours: tuple | None = None) -> np.ndarray:
    """(n,) int64 ranking. delta: cosine-distance radius (default: `choose_delta`); classes:
    k-means pseudo-classes for the purity rule; max_degree: neighbours listed per ball (default
    `auto_max_degree`); include: rows already chosen (their balls count as covered; not
    returned); neighbours: a k-NN graph (sims, ids) of these rows computed before, used when it lists
    max_degree neighbours. `seed` seeds k-means, the neighbour search and tie-breaks."""
    from curate.quality.scores import neighbours_or_knn  # lazy: faiss and numba load on first use
    from curate.select._coverage import lazy_greedy

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    include = np.unique(np.asarray(include, np.int64)) if include is not None else None
    n = min(int(n), len(x) - (0 if include is None else len(include)))
    max_degree = auto_max_degree(len(x)) if max_degree is None else int(max_degree)
    sims, ids = neighbours_or_knn(x, min(max_degree, len(x) - 1), neighbours, seed)
    if delta is None:
        delta = choose_delta(x, sims, ids, classes, purity, seed)
    indptr, cover = ball_graph(sims, ids, delta)
    tiebreak = np.random.default_rng(seed).permutation(len(x))
    weight = np.ones(len(cover), np.float32)
    return lazy_greedy(indptr, cover, weight, n, tiebreak, include, restart=True)[0]


def choose_delta(x: np.ndarray, sims: np.ndarray, ids: np.ndarray, classes: int = 10,
                 purity: float = PURITY, seed: int = 0, min_ball: int = MIN_BALL) -> float:
    """Largest cosine-distance radius at which a fraction >= `purity` of the (capped) balls
    hold only their centre's k-means pseudo-class, and at least the median distance to the
    `min_ball`-th neighbour (0: no floor)."""
    floor = 0.0
    k = min(int(min_ball), ids.shape[1])
    if k > 0:
        kth = ids[:, k - 1] >= 0
        floor = float(np.median(1.0 - sims[kth, k - 1])) if kth.any() else 0.0
    return max(floor, purity_delta(x, sims, ids, classes, purity, seed))


def purity_delta(x: np.ndarray, sims: np.ndarray, ids: np.ndarray, classes: int = 10,
                 purity: float = PURITY, seed: int = 0) -> float:
    """The paper's rule alone: the largest radius at which >= `purity` of the balls are pure.

    A ball is pure for every delta up to the distance of the centre's nearest neighbour of
    another class (infinite if none in its list), so the answer is a quantile of that distance.
    """
    from curate.select.typiclust import kmeans_labels

    label = kmeans_labels(x, min(int(classes), len(x)), seed)
    dist = 1.0 - sims
    other = (ids >= 0) & (label[np.maximum(ids, 0)] != label[:, None])
    first_other = np.where(other.any(1), dist[np.arange(len(x)), other.argmax(1)], np.inf)
    bound = np.sort(first_other)[min(len(x) - 1, int((1.0 - purity) * len(x)))]
    if np.isfinite(bound):
        return float(bound)
    return float(dist[ids >= 0].max(initial=0.0)) + 1e-6  # every capped ball is pure: take them whole


def ball_graph(sims: np.ndarray, ids: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr (N+1,), cover (E,) int32): row c's ball is c itself and its listed neighbours
    at cosine distance < delta."""
    rows = len(ids)
    inside = (ids >= 0) & (1.0 - sims < delta)
    cover = np.concatenate([np.arange(rows, dtype=np.int64)[:, None], ids], axis=1)
    keep = np.concatenate([np.ones((rows, 1), bool), inside], axis=1)
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(keep.sum(1), out=indptr[1:])
    return indptr, cover[keep].astype(np.int32)


def ball_coverage(vectors: np.ndarray, chosen: np.ndarray, delta: float) -> float:
    """Fraction of rows within cosine distance delta of some chosen row (exact, chunked; tests)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    c = x[np.asarray(chosen, np.int64)]
    covered = np.zeros(len(x), bool)
    for lo in range(0, len(x), 4096):
        covered[lo:lo + 4096] = (x[lo:lo + 4096] @ c.T).max(1) > 1.0 - delta
    return float(covered.mean())
