"""k-center greedy (Sener & Savarese, 2018, "core-set"): repeatedly take the point farthest from
everything chosen so far, which minimises the coverage radius within a factor of 2 of optimal."""
from __future__ import annotations

import numpy as np

from curate.select.base import STRATEGIES


@STRATEGIES.register("kcenter")
def kcenter_greedy(vectors: np.ndarray, n: int, seed: int = 0, start: int | None = None) -> np.ndarray:
    """Greedy farthest-point ranking under Euclidean distance. First pick: `start`, else the point
    nearest the mean (a typical image, rather than an outlier)."""
    import torch  # lazy: keeps `import curate` light for the app

    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    sq = (x * x).sum(1)
    first = int(start) if start is not None else int(((x - x.mean(0)) ** 2).sum(1).argmin())
    chosen = np.empty(n, dtype=np.int64)
    min_d2 = torch.full((len(x),), float("inf"))
    nxt = first
    for i in range(n):
        chosen[i] = nxt
        d2 = sq - 2 * (x @ x[nxt]) + sq[nxt]  # squared distance of every point to the new centre
        torch.minimum(min_d2, d2.clamp_(min=0), out=min_d2)
        min_d2[nxt] = -1.0  # never pick a centre twice
        nxt = int(min_d2.argmax())
    return chosen


def coverage_radius(vectors: np.ndarray, centres: np.ndarray) -> float:
    """Largest distance from any point to its nearest centre (what k-center minimises)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    c = x[torch.from_numpy(np.asarray(centres))]
    return float(torch.cdist(x, c).min(1).values.max())
