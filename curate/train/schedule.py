"""Learning-rate schedule as a pure function of training progress in [0, 1].

Progress is wall-clock fraction under a `--minutes` budget, so warm-up and cosine decay span
the budget the user gave rather than an epoch count nobody knows in advance.
"""
from __future__ import annotations

import math


def warmup_cosine(progress: float, warmup: float = 0.05, final: float = 0.0) -> float:
    """Multiplier for the base lr: linear 0->1 over `warmup`, cosine 1->`final` after."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    t = (progress - warmup) / max(1e-12, 1 - warmup)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))
