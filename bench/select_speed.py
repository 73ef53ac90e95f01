"""Selection: k-center greedy time for n picks from a pool, against its arithmetic floor
(n matrix-vector products over the pool, one per pick)."""
from __future__ import annotations

import time

import numpy as np
import torch

from bench.context import Context
from bench.measure import timed_loop
from bench.report import BenchResult
from bench.vectors import subsample
from curate import select

TITLE = "diversity selection (seconds)"


def matvec_floor(x: np.ndarray, n: int, seconds: float) -> float:
    """Seconds for n products pool @ vector: the one pass over the pool each k-center pick needs."""
    xt = torch.from_numpy(x)
    v = xt[0].clone()
    times = timed_loop(lambda: xt @ v, seconds, torch.device("cpu"), warmup=3, min_iters=20)
    return float(np.median(times)) * n


def run(ctx: Context) -> BenchResult:
    x = np.ascontiguousarray(subsample(ctx.vectors, ctx.cfg.kcenter_pool, ctx.cfg.seed))
    n = min(ctx.cfg.kcenter_n, len(x))
    rows = []
    for strategy in ("kcenter", "random"):
        t0 = time.perf_counter()
        select(x, n, strategy, seed=ctx.cfg.seed)
        rows.append({"strategy": strategy, "pool": len(x), "n": n, "seconds": time.perf_counter() - t0})
    floor = matvec_floor(x, n, seconds=2.0)
    rows[0].update({"floor: n matvecs s": floor, "kcenter/floor": rows[0]["seconds"] / floor})
    notes = [f"{ctx.vectors_source}; curate.select(vectors, n, strategy), CPU (k-center runs in torch)"]
    return BenchResult(rows, notes)
