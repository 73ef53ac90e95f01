"""Deterministic held-out split by id: stable when images are added (each id decides alone)."""
from __future__ import annotations

import numpy as np

_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment (2^64 / golden ratio)


def holdout_mask(ids: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask, True for ids in the held-out split (about `fraction` of them).

    A splitmix64 hash of (id, seed) decides each id, so adding images never moves old ones
    between splits.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    ids = np.asarray(ids)
    if ids.size and ids.min() < 0:
        raise ValueError("holdout ids must be non-negative manifest ids")
    offset = np.uint64((int(seed) * _GOLDEN) % 2**64)  # Python ints: the wrap-around is exact, no warning
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design here
        x = ids.astype(np.uint64) + offset
        x = x + np.uint64(_GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53) < fraction
