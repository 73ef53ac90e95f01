"""Uniform random sampling: the baseline every other strategy must beat."""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES


@STRATEGIES.register("random")
def random_ranking(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(len(vectors))[:n]
