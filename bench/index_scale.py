"""The index curate picks at 1M and 10M vectors, next to exact search in the same run.

    python -m bench.index_scale [--sizes 1000000 10000000] [--dims 128 512] [--memory 4G]

Per (N, D): synthetic clustered unit vectors (bench.vectors.clustered_vectors, written once in
chunks to an .npy file under --workdir and read back as a memmap), the index `plan_index` picks
for the --memory budget, built by `build_index` exactly as `curate embed` builds it (a sample
for training, chunks of vectors added) and tuned by `tune_nprobe` to recall@10 >= 0.95 on 1,000
of its own vectors. Then, on 1,000 held-out draws of the same clusters (not in the index):
single-query latency p50/p99 and recall@10 against exact search; the exact row scans all N
vectors per query (FAISS brute force, one thread, chunked over the memmap), timed on 20 queries
(5 beyond 2M vectors, where each reads gigabytes).

Each (N, D) runs in its own process, so its peak RSS is its own. Prints a markdown table and
writes bench/results/index_scale-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from bench.machine import load_average, machine_facts, summary_line
from bench.measure import PeakMemory, percentiles_ms
from bench.report import markdown_table
from bench.vectors import clustered_vectors
from curate import storage

REPO = Path(__file__).resolve().parent.parent
CLUSTERS = 1000  # many modes, as in a real corpus of 1M+ images
QUERIES = 1000
EXACT_QUERIES = 20  # one exact query reads all N vectors: a few suffice for its latency
GENERATE_CHUNK = 500_000


def vectors_file(workdir: Path, n: int, d: int) -> Path:
    """(n + QUERIES, d) float32 clustered unit vectors, generated once (the last QUERIES rows are the queries)."""
    path = workdir / f"clustered_{n}x{d}.npy"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.npy")
    out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n + QUERIES, d))
    rng = np.random.default_rng(0)
    centres = clustered_vectors(CLUSTERS, d, clusters=CLUSTERS, spread=0.0, bridges=0.0, seed=1)
    for start in range(0, n + QUERIES, GENERATE_CHUNK):
        m = min(GENERATE_CHUNK, n + QUERIES - start)
        first, second = rng.integers(0, CLUSTERS, m), rng.integers(0, CLUSTERS, m)
        weight = np.where(rng.random(m) < 0.1, rng.random(m), 1.0).astype(np.float32)[:, None]
        x = weight * centres[first] + (1 - weight) * centres[second]
        x += rng.standard_normal((m, d), dtype=np.float32) / np.sqrt(d)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()
    del out
    tmp.rename(path)
    return path


def measure(n: int, d: int, memory: str, workdir: Path) -> dict:
    """One (N, D) row; run in a child process (see `main`)."""
    from curate.index import build_index, parse_memory, plan_index, recall_at_k, search
    from curate.index.faiss_index import Reranked, _omp_threads
    from curate.index.tune import exact_neighbours, tune_nprobe

    all_vectors = np.load(vectors_file(workdir, n, d), mmap_mode="r")
    base, queries = all_vectors[:n], np.ascontiguousarray(all_vectors[n:], np.float32)
    ids = np.arange(n)
    plan = plan_index(n, d, parse_memory(memory))
    with PeakMemory() as mem:
        t = time.perf_counter()
        index, sidecar = build_index(base, ids, plan.factory)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        tuned = tune_nprobe(index, base, ids, params=sidecar) if "IVF" in plan.factory else {
            **sidecar, "recall_at_10": 1.0}
        tune_s = time.perf_counter() - t
    searcher = Reranked(index, base, tuned["rerank"]) if tuned.get("rerank") else index
    t = time.perf_counter()
    truth = exact_neighbours(base, ids, ids, queries, 10)
    exact_batch_s = time.perf_counter() - t
    found = search(searcher, queries, 10)[1]
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        search(searcher, q[None], 10)
        times[i] = time.perf_counter() - t
    exact_times = np.empty(EXACT_QUERIES if n <= 2_000_000 else EXACT_QUERIES // 4)
    with _omp_threads(1):
        for i, q in enumerate(queries[:len(exact_times)]):
            t = time.perf_counter()
            exact_neighbours(base, ids, ids, q[None], 10)
            exact_times[i] = time.perf_counter() - t
    p50, p99 = percentiles_ms(times)
    e50, e99 = percentiles_ms(exact_times)
    return {"N": n, "D": d, "index": plan.factory, "kind": plan.kind, "nprobe": tuned.get("nprobe"),
            "rerank": tuned.get("rerank"), "build s": round(build_s, 1), "tune s": round(tune_s, 1),
            "index MB": round(index_bytes(index, workdir) / 2**20),
            "peak RSS MB": round(mem.rss_mb), "p50 ms": p50, "p99 ms": p99,
            "recall@10": round(recall_at_k(found, truth, 10), 4), "tuned recall@10": tuned["recall_at_10"],
            "exact p50 ms": e50, "exact p99 ms": e99, "exact 1,000 queries s": round(exact_batch_s, 1),
            "float MB": round(n * d * 4 / 2**20)}


def index_bytes(index, workdir: Path) -> int:
    """Size of the saved index (what a search process loads)."""
    import faiss

    path = workdir / "index.tmp.faiss"
    faiss.write_index(index, str(path))
    size = path.stat().st_size
    path.unlink()
    return size


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    p.add_argument("--memory", default="4G", help="index memory budget (curate embed --index-memory)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-index-bench"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # child: measure this N, D
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(*args.one, args.memory, args.workdir)))
        return
    facts = machine_facts("cpu", REPO)
    rows = []
    for n in args.sizes:
        for d in args.dims:
            vectors_file(args.workdir, n, d)
            out = subprocess.run([sys.executable, "-m", "bench.index_scale", "--one", str(n), str(d), "--memory",
                                  args.memory, "--workdir", str(args.workdir)], capture_output=True, text=True,
                                 cwd=REPO)
            result = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if out.returncode or not result:
                raise SystemExit(f"N={n} D={d} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(result[0][7:]))
            print(markdown_table(rows[-1:]), flush=True)
    facts["load_avg_end"] = load_average()
    print(f"\n### Index at scale (synthetic clustered vectors, {CLUSTERS:,} clusters; budget {args.memory})\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    out = args.out / f"index_scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "memory": args.memory, "rows": rows}, indent=1, default=float))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
