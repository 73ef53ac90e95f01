"""Near-duplicate search cost at 50,000 and 1,000,000 images: seconds per stage and peak memory.

    python -m bench.dedup_scale [--sizes 50000,1000000] [--cifar-workspace WS] [--dim 128]

The search never builds an N x N matrix: two k-NN lists per image (fingerprint codes and embeddings),
then each candidate pair (and each null pair of at most 20k query images) is scored. Its cost is
N x k pairs, so the work grows linearly; this measures it.

Inputs: real CIFAR-10 fingerprints when a workspace with fingerprints.npy is given (its 50,000
thumbnails), else and beyond that synthetic ones: each a blend of two real thumbnails at random
offsets (realistic pixel statistics, no planted duplicates), with random clustered unit vectors as
embeddings (`--dim`). Scoring is the same code `curate dedup` runs (`score_pairs`), timed by stage.
Prints a markdown table and writes bench/results/dedup_scale-<timestamp>.json.
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
from curate.quality import pairs as pair_search
from curate.quality.fingerprint import THUMB
from curate.quality.pairs import PairConfig, score_pairs
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent


def thumbnails(n: int, real: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, T, T, 3) uint8: the real thumbnails first, then blends of two of them at random offsets."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, THUMB, THUMB, 3), np.uint8)
    take = min(n, len(real))
    out[:take] = real[:take]
    for start in range(take, n, 50_000):
        m = min(50_000, n - start)
        a, b = real[rng.integers(0, len(real), m)], real[rng.integers(0, len(real), m)]
        shift = rng.integers(0, THUMB, 2)
        out[start:start + m] = (a.astype(np.uint16) + np.roll(b, tuple(shift), axis=(1, 2))) // 2
    return out


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) unit vectors around n // 100 random centres (clustered, like embeddings)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 100), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed_stages() -> tuple[dict, callable]:
    """Stage timer fed by score_pairs' progress callback: seconds from each stage's first report to its last."""
    stages: dict = {}

    def progress(done, total, info):
        stage = str(info.get("stage"))
        now = time.perf_counter()
        first, _, _ = stages.get(stage, (now, now, 0))
        stages[stage] = (first, now, total)
    return stages, progress


def run(n: int, real: np.ndarray, dim: int) -> dict:
    thumbs, vecs = thumbnails(n, real), vectors(n, dim)
    stages, progress = timed_stages()
    with PeakMemory() as mem:
        t = time.perf_counter()
        table = score_pairs(thumbs, vecs, PairConfig(), progress)
        total = time.perf_counter() - t
    scoring = sum(last - first for first, last, _ in stages.values())
    row = {"images": n, "candidate pairs": int((~table["null"]).sum()), "null pairs": int(table["null"].sum()),
           "k-NN lists s": round(total - scoring, 1), "pair scoring s": round(scoring, 1), "total s": round(total, 1),
           "pairs/s": round(len(table) / max(scoring, 1e-9)), "peak RSS MB": round(mem.rss_mb)}
    row["stages"] = {k: {"s": round(last - first, 1), "pairs": tot} for k, (first, last, tot) in stages.items()}
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="50000,1000000")
    p.add_argument("--cifar-workspace", type=Path, default=Path("/tmp/ws_cifar"))
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    file = Workspace(args.cifar_workspace).fingerprints_file
    if file.exists():
        real, source = np.load(file), f"real CIFAR-10 fingerprints ({file})"
        real = real[real.reshape(len(real), -1).max(1) > 0]
    else:
        real, source = np.random.default_rng(0).integers(0, 256, (1000, THUMB, THUMB, 3), np.uint8), "random pixels"
    rows = [run(int(n), real, args.dim) for n in args.sizes.split(",")]
    facts["load_avg_end"] = load_average()
    print(f"### Near-duplicate search at scale ({source}; synthetic beyond it; embeddings {args.dim}-d)\n")
    print(summary_line(facts) + "\n")
    print(markdown_table([{k: v for k, v in r.items() if k != "stages"} for r in rows]))
    print(f"\nnull queries capped at {pair_search.NULL_QUERIES:,} images; k = {PairConfig().k} per list")
    out = args.out / f"dedup_scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    storage.write_text(out, json.dumps({"machine": facts, "source": source, "rows": rows}, indent=1, default=float))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
