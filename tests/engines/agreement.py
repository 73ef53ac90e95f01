"""What "this engine agrees with local" means for the vectors it computes."""
from __future__ import annotations

import numpy as np


def assert_same_vectors(vectors: np.ndarray, local_vectors: np.ndarray) -> float:
    """Row by row: zero where local is zero, else cosine >= 0.9999; returns the smallest cosine."""
    assert vectors.shape == local_vectors.shape and vectors.dtype == np.float32
    zero = ~local_vectors.any(axis=1)
    assert not vectors[zero].any()
    cos = (vectors[~zero] * local_vectors[~zero]).sum(axis=1)
    assert cos.min() >= 0.9999, f"smallest cosine {cos.min()}"
    shifted = (vectors[~zero] * np.roll(local_vectors[~zero], 1, axis=0)).sum(axis=1)
    assert np.median(shifted) < 0.95  # a row mix-up would show: other images' vectors are far apart
    return float(cos.min())
