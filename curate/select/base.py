"""The strategy registry and the `select` facade."""
from __future__ import annotations

import numpy as np

from curate.registry import Registry

STRATEGIES: Registry = Registry("selection strategy")


def select(vectors: np.ndarray, n: int, strategy: str = "kcenter", seed: int = 0, **params) -> np.ndarray:
    """Row indices of `vectors` in priority order (length min(n, N - len(include))).

    Strategies that take `include=` (rows already chosen) plan around those rows and never
    return them.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    include = params.get("include")
    included = np.unique(np.asarray(include, np.int64)) if include is not None else np.empty(0, np.int64)
    n = min(int(n), len(vectors) - len(included))
    ranking = np.asarray(STRATEGIES.get(strategy)(vectors, n, seed=seed, **params), dtype=np.int64)
    assert len(ranking) == n and len(np.unique(ranking)) == n, f"{strategy} returned a bad ranking"
    assert not np.isin(ranking, included).any(), f"{strategy} returned an included row"
    return ranking
