"""The strategy registry and the `select` facade."""
from __future__ import annotations

import numpy as np

from curate.registry import Registry

STRATEGIES: Registry = Registry("selection strategy")


def select(vectors: np.ndarray, n: int, strategy: str = "kcenter", seed: int = 0, **params) -> np.ndarray:
    """Row indices of `vectors` in priority order (length min(n, N))."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    n = min(int(n), len(vectors))
    ranking = np.asarray(STRATEGIES.get(strategy)(vectors, n, seed=seed, **params), dtype=np.int64)
    assert len(ranking) == n and len(np.unique(ranking)) == n, f"{strategy} returned a bad ranking"
    return ranking
