"""Selection strategies, one file each, registered by name (the CLI's `--strategy` values).

Contract: strategy(vectors (N, D) float32, n, seed=..., **params) -> (n,) int64 row indices in
priority order, so any smaller budget is a prefix of the ranking.
"""
from curate.registry import import_submodules
from curate.select.base import STRATEGIES, select

import_submodules(__name__)

__all__ = ["STRATEGIES", "select"]
