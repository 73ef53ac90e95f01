"""auto: the strategy that taught a classifier most at this budget in curate's selection-lift
benchmark (`bench/selection_lift.py`; README, "Selection lift"), the default of `curate select` and
of the Select page.

    n <= TYPICLUST_MAX   `typiclust`: the most typical image of each k-means cluster
    larger budgets       `facility_location`: representatives in proportion to the data's mass

Typical images win when there are few labels and coverage of the dense modes is what a
classifier lacks (CIFAR-10, 10 seeds: +9.6 points over random at 10 picks, +1.6 at 300); past
one pick per cluster TypiClust only cycles through its clusters again and fell below random
(-0.9 at 3,000 and 10,000), while facility location stayed the best (+0.7, +0.4, +0.2 at 1,000,
3,000, 10,000). Hacohen et al. (2022) report the same turn from low to high budgets. The choice
depends only on the number of picks, so a selection stays reproducible, and a saved selection
names the strategy that actually ranked it (`resolve_strategy`).
"""
from __future__ import annotations

import inspect

import numpy as np

from curate.select.base import STRATEGIES

TYPICLUST_MAX = 500  # typiclust's one-pick-per-cluster range (its max_clusters)


RULE = f"typiclust up to {TYPICLUST_MAX} images, facility_location beyond"  # for help texts


def strategy_for_budget(n: int) -> str:
    return "typiclust" if n <= TYPICLUST_MAX else "facility_location"


def resolve_strategy(strategy: str, n: int) -> str:
    """The registered strategy that ranks `n` picks: `auto`'s choice for this budget, else `strategy`."""
    return strategy_for_budget(n) if strategy == "auto" else strategy


def ranked_by(requested: str, used: str) -> str:
    """How to tell a user which strategy ranked a selection: `used`, marked as auto's pick when asked for auto."""
    return f"{used} (auto's choice for this budget)" if requested == "auto" else used


@STRATEGIES.register("auto")
def auto(vectors: np.ndarray, n: int, seed: int = 0, include: np.ndarray | None = None,
         neighbours: tuple | None = None, **params) -> np.ndarray:
    """(n,) int64 ranking by `strategy_for_budget(n)`; `params` (e.g. typiclust's `clusters`) go
    to that strategy, and include and neighbours where it takes them."""
    fn = STRATEGIES.get(strategy_for_budget(n))
    if neighbours is not None and "neighbours" in inspect.signature(fn).parameters:
        params["neighbours"] = neighbours
    return fn(vectors, n, seed=seed, include=include, **params)


auto.budget_dependent = True  # a budget past TYPICLUST_MAX is ranked by another strategy
