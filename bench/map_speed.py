"""2-D map: curate's UMAP projection time against PCA (its small-set fallback) on the same points."""
from __future__ import annotations

import logging
import time

from bench.context import Context
from bench.report import BenchResult
from bench.vectors import subsample
from curate.project.maps import pca_2d, umap_2d

TITLE = "2-D map (seconds)"
log = logging.getLogger(__name__)


def _seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def run(ctx: Context) -> BenchResult:
    pool, sizes = ctx.vectors, sorted(ctx.cfg.umap_sizes)
    # numba compiles UMAP's kernels on the first call of a process: pay that on half the smallest
    # size (same code paths: above 4,096 points UMAP switches to NN-descent) and report it apart
    warm_n = max(300, sizes[0] // 2)
    log.info("map: UMAP warm-up (numba compilation) on %d points", warm_n)
    rows = [{"case": "UMAP first call (numba JIT + run)", "N": warm_n,
             "seconds": _seconds(umap_2d, subsample(pool, warm_n, seed=1))}]
    for n in dict.fromkeys(min(s, len(pool)) for s in sizes):
        x = subsample(pool, n, ctx.cfg.seed)
        log.info("map: UMAP on %d points", n)
        umap_s = _seconds(umap_2d, x, ctx.cfg.seed)
        pca_s = _seconds(pca_2d, x, ctx.cfg.seed)
        rows.append({"case": "umap_2d (cosine, PCA-50 first)", "N": n, "seconds": umap_s,
                     "baseline: pca_2d s": pca_s, "umap/pca": umap_s / pca_s})
    notes = [f"{ctx.vectors_source}; UMAP as curate runs it (n_neighbors 15, n_jobs=1, low_memory)"]
    return BenchResult(rows, notes)
