"""The 2-D map at 1M points: UMAP fitted on a sample with the rest placed by their neighbours, next to
UMAP of every point (where that still fits the time) and PCA, in one run.

    python -m bench.map_scale [--sizes 200000 1000000] [--dim 128] [--full-max 200000]

Synthetic clustered unit vectors (bench.vectors.clustered_vectors, 100 clusters, 10% bridges) stand
in for a workspace's embeddings. Per size: `umap_2d` as `curate embed` runs it (above
UMAP_FIT_MAX points: fit on a sample, place the rest), plain UMAP on all points given their exact
k-NN (only up to --full-max points: beyond, it takes far longer than the goal of 5 minutes at 1M),
and PCA. Map quality: how often a point's nearest neighbour on the 2-D map belongs to its own
cluster (10,000 points, bridges left out), the same figure for the exact neighbours in the full
space as the ceiling. Prints a markdown table and writes bench/results/map_scale-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.machine import load_average, machine_facts, summary_line
from bench.measure import PeakMemory
from bench.report import markdown_table
from curate import storage

REPO = Path(__file__).resolve().parent.parent
CLUSTERS = 100
PROBES = 10_000


def labelled_vectors(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) unit vectors around CLUSTERS centres and each row's cluster (-1: a bridge between two)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    first, second = rng.integers(0, CLUSTERS, n), rng.integers(0, CLUSTERS, n)
    bridge = rng.random(n) < 0.1
    weight = np.where(bridge, rng.random(n), 1.0).astype(np.float32)[:, None]
    x = weight * centres[first] + (1 - weight) * centres[second]
    x += rng.standard_normal((n, d), dtype=np.float32) * (0.6 / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.where(bridge, -1, first)


def neighbour_agreement(points: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Share of PROBES non-bridge points whose nearest other point (L2 in `points`) has their label."""
    import faiss

    rng = np.random.default_rng(seed)
    probes = rng.choice(np.flatnonzero(labels >= 0), min(PROBES, int((labels >= 0).sum())), replace=False)
    base = np.ascontiguousarray(points, np.float32)
    _, ids = faiss.knn(base[probes], base, 2)
    nearest = np.where(ids[:, 0] == probes, ids[:, 1], ids[:, 0])
    return float(np.mean(labels[nearest] == labels[probes]))


def timed(fn, *args, **kwargs) -> tuple[np.ndarray, float, float]:
    with PeakMemory() as mem:
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - t
    return out, seconds, mem.rss_mb


def main(argv: list[str] | None = None) -> None:
    import umap

    from curate.project.maps import UMAP_FIT_MAX, pca_2d, pca_reduce, umap_2d, umap_neighbours
    from curate.quality.scores import knn

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--full-max", type=int, default=200_000, help="largest N also mapped by UMAP on every point")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    umap_2d(labelled_vectors(2000, 16)[0])  # numba compiles once, outside the timings
    rows = []
    for n in args.sizes:
        x, labels = labelled_vectors(n, args.dim)
        ceiling = neighbour_agreement(x, labels)
        runs = [("curate (sample + place)" if n > UMAP_FIT_MAX else "curate (UMAP)", lambda: umap_2d(x))]
        if n <= args.full_max and n > UMAP_FIT_MAX:
            def full_umap():  # what umap_2d did before the sample: every point, its exact k-NN given
                reduced = pca_reduce(x, 50)
                sims, ids = knn(reduced / np.linalg.norm(reduced, axis=1, keepdims=True), 15)
                return umap.UMAP(n_components=2, n_neighbors=15, metric="cosine", random_state=0, low_memory=True,
                                 n_jobs=1, precomputed_knn=umap_neighbours(sims, ids, 15)).fit_transform(reduced)
            runs.append(("UMAP of every point", full_umap))
        runs.append(("PCA", lambda: pca_2d(x)))
        for name, run in runs:
            xy, seconds, rss = timed(run)
            rows.append({"N": n, "method": name, "seconds": round(seconds, 1), "peak RSS MB": round(rss),
                         "2-D neighbour in own cluster": round(neighbour_agreement(xy, labels), 3),
                         "full-space ceiling": round(ceiling, 3)})
            print(markdown_table(rows[-1:]), flush=True)
    facts["load_avg_end"] = load_average()
    print(f"\n### The 2-D map at scale ({args.dim}-d, {CLUSTERS} clusters; UMAP fitted on {UMAP_FIT_MAX:,} points above that)\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    out = args.out / f"map_scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "rows": rows}, indent=1, default=float))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
