"""Uniqueness-weighted sampling: a random sample without replacement in which each image's chance
is proportional to its uniqueness (cosine distance to its k-th nearest neighbour) raised to
`power`, via Efraimidis & Spirakis (2006) keys u^(1/w), u uniform: sorting by key gives a
weighted sample of every size at once, so any budget is a prefix.

Rare images come first, dense crowds and near-duplicates are thinned, but it stays a sample:
common modes still get picks. power=0 is uniform random sampling; larger powers approach a
sort by uniqueness (the scored outliers first).

Pick it to thin redundant data (video frames, bursts, scraped duplicates) while keeping the
distribution's breadth; drop junk outliers first (`curate.quality.scores.outliers`).
"""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES


@STRATEGIES.register("uniqueness")
def uniqueness_sample(vectors: np.ndarray, n: int, seed: int = 0, k: int = 10, power: float = 1.0,
                      neighbours: tuple | None = None) -> np.ndarray:
    """(n,) int64: weighted sample without replacement, weights uniqueness ** power. `neighbours`: a
    k-NN graph (sims, ids) of these rows computed before, used instead of searching."""
    from curate.quality.scores import neighbours_or_knn, uniqueness_from  # lazy: faiss loads on first use

    sims = neighbours_or_knn(vectors, k, neighbours)[0]
    weight = np.maximum(uniqueness_from(sims).astype(np.float64), 1e-12) ** float(power)
    u = np.random.default_rng(seed).random(len(weight))
    key = np.log(np.maximum(u, 1e-300)) / weight  # log of u^(1/w): same order, no underflow
    return np.argsort(-key, kind="stable")[:n].astype(np.int64)
