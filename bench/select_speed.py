"""Selection: time and peak memory of every registered strategy, n picks from a pool (by default
1,000 from 50,000 and 10,000 from 1,000,000), against the arithmetic floor of plain k-center
greedy (n matrix-vector products over the pool: one full pass per pick).

Each strategy first runs once on a small pool (imports, numba kernels loaded), then is timed.
Peak memory per strategy: the kernel's high-water mark is reset before each one (as the harness
does per benchmark), so each row's peak is its own, the pool included.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np
import torch

from bench.context import Context
from bench.measure import PeakMemory, timed_loop
from bench.report import BenchResult
from bench.vectors import clustered_vectors, subsample
from curate import select
from curate.select import STRATEGIES

TITLE = "diversity selection (seconds, peak memory)"
log = logging.getLogger(__name__)


def matvec_floor(x: np.ndarray, n: int, seconds: float) -> float:
    """Seconds for n products pool @ vector: the one pass over the pool each plain k-center pick needs."""
    xt = torch.from_numpy(x)
    v = xt[0].clone()
    times = timed_loop(lambda: xt @ v, seconds, torch.device("cpu"), warmup=3, min_iters=10)
    return float(np.median(times)) * n


def pools(ctx: Context):
    """(label, pool (N, D) float32, n) for each size in the config."""
    cfg = ctx.cfg
    if cfg.workspace is not None:
        yield "workspace", np.ascontiguousarray(subsample(ctx.vectors, cfg.kcenter_pool, cfg.seed)), cfg.kcenter_n
    else:
        yield "synthetic", clustered_vectors(cfg.kcenter_pool, d=cfg.select_dim, seed=cfg.seed), cfg.kcenter_n
    if cfg.select_large is not None:
        size, n = cfg.select_large
        yield "synthetic", clustered_vectors(size, d=cfg.select_dim, seed=cfg.seed), n


def time_strategy(x: np.ndarray, n: int, strategy: str, seed: int) -> dict:
    before = resident_mb()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        select(x, n, strategy, seed=seed)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak RSS MB": mem.rss_mb, "+MB over start": mem.rss_mb - before}


def resident_mb() -> float:
    """Current resident memory (Linux), NaN elsewhere."""
    status = Path("/proc/self/status")
    match = re.search(r"VmRSS:\s+(\d+) kB", status.read_text()) if status.exists() else None
    return int(match.group(1)) / 1024 if match else float("nan")


def run(ctx: Context) -> BenchResult:
    names = STRATEGIES.names()
    warm = clustered_vectors(2_000, d=ctx.cfg.select_dim, seed=ctx.cfg.seed + 1)
    for name in names:
        select(warm, 20, name)
    rows = []
    for source, x, n in pools(ctx):
        n = min(n, len(x))
        floor = matvec_floor(x, n, seconds=2.0)
        for name in names:
            log.info("select: %s, %d of %d", name, n, len(x))
            figures = time_strategy(x, n, name, ctx.cfg.seed)
            rows.append({"strategy": name, "pool": len(x), "dim": x.shape[1], "n": n, "vectors": source,
                         **figures, "/ floor": figures["seconds"] / floor})
        rows.append({"strategy": "(floor: plain k-center, n matvecs)", "pool": len(x), "dim": x.shape[1], "n": n,
                     "vectors": source, "seconds": floor})
        del x
    notes = [f"synthetic: bench.vectors.clustered_vectors(N, d={ctx.cfg.select_dim}) (100 Gaussian clusters, 10% "
             "of points between two)" + ("; workspace: its real embeddings" if ctx.cfg.workspace else ""),
             "curate.select(vectors, n, strategy) with default parameters, CPU, torch/faiss threads as configured",
             "/ floor: seconds over the floor (n pool-sized matrix-vector products, what plain k-center greedy "
             "needs at least); peak RSS: the process's (pool and libraries included); +MB over start: the "
             "strategy's own working memory; each row resets the high-water mark, so the section's peak is the "
             "last row's"]
    return BenchResult(rows, notes)
