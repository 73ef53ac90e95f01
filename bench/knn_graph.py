"""Duplicates and scores at 1M vectors: the shared k-NN graph from the workspace's index, next to
the all-against-all (flat) search they replaced, in one run.

    python -m bench.knn_graph [--n 1000000] [--dim 128] [--threshold 0.95]

A workspace holding N synthetic clustered unit vectors as its embeddings (as `curate embed`
leaves them), 1% of them planted near copies of another row (cosine ~0.97-0.99). Graph path, as
`curate embed` + `curate scores` + `curate dedup` run it: index planned and tuned
(`build_workspace_index`), `knn_graph` (30 neighbours per image from that index), the scores from
it (`compute_scores`), and near-duplicate groups from its pairs above --threshold; plus the
public `curate.near_duplicates(vectors)` (k-NN candidates, no index). Flat path: what the same
steps did before, exact all-against-all: FAISS range search above the threshold and exact k-NN
(`faiss.knn`), timed on a sample of --flat-queries rows and scaled to N (each query costs the
same: a scan of all N vectors). Recall: the graph's recall@10 against exact on 1,000 rows, and
the share of planted pairs found by each path.
Prints a markdown table and writes bench/results/knn_graph-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from bench.index_scale import vectors_file
from bench.machine import load_average, machine_facts, summary_line
from bench.measure import PeakMemory
from bench.report import markdown_table
from curate import storage
from curate.clock import now
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
PLANTED = 0.01


def synthetic_workspace(path: Path, n: int, d: int, workdir: Path) -> tuple[Workspace, np.ndarray]:
    """A workspace whose embeddings.npy holds n clustered vectors with planted near copies; returns the
    planted (copy, original) pairs."""
    source = np.load(vectors_file(workdir, n, d), mmap_mode="r")
    ws = Workspace(path)
    ws.path.mkdir(parents=True, exist_ok=True)
    x = np.array(source[:n])
    rng = np.random.default_rng(1)
    copies = rng.choice(n, int(PLANTED * n), replace=False)
    originals = rng.choice(np.setdiff1d(np.arange(n), copies), len(copies), replace=False)
    noise = rng.standard_normal((len(copies), d), dtype=np.float32) * rng.uniform(0.1, 0.25, (len(copies), 1)) / np.sqrt(d)
    x[copies] = x[originals] + noise
    x[copies] /= np.linalg.norm(x[copies], axis=1, keepdims=True)
    storage.write_npy(ws.embeddings_file, x)
    storage.write_json(ws.sidecar(ws.embeddings_file), {"model": f"synthetic {n}x{d}", "d": d, "n": n, "created": now()})
    return ws, np.stack([copies, originals], axis=1)


def found_share(groups: list[list[int]], planted: np.ndarray) -> float:
    group_of = {}
    for g, members in enumerate(groups):
        for m in members:
            group_of[m] = g
    hits = [group_of.get(int(a), -1) == group_of.get(int(b), -2) for a, b in planted]
    return float(np.mean(hits))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run(n: int, d: int, threshold: float, flat_queries: int, workdir: Path) -> list[dict]:
    import curate
    from curate.index.tune import exact_neighbours, recall_at_k
    from curate.quality.duplicates import groups_from_pairs
    from curate.steps.graph import knn_graph
    from curate.steps.index import build_workspace_index
    from curate.steps.scores import compute_scores

    ws, planted = synthetic_workspace(workdir / f"ws_{n}x{d}", n, d, workdir)
    for f in (ws.index_file, ws.knn_graph_file):
        f.unlink(missing_ok=True)
    x = np.asarray(ws.embeddings())
    rows = []
    with PeakMemory() as mem:
        sidecar, index_s = timed(lambda: build_workspace_index(ws))
        (ids, sims, nbrs), graph_s = timed(lambda: knn_graph(ws))
        _, scores_s = timed(lambda: compute_scores(ws))

        def graph_groups():
            close = sims >= threshold
            pairs = np.stack([np.repeat(ids, close.sum(1)), nbrs[close]], axis=1)
            return groups_from_pairs(pairs, n)
        groups, groups_s = timed(graph_groups)
    sample = np.random.default_rng(0).choice(len(ids), 1000, replace=False)
    truth = exact_neighbours(x, np.arange(n), np.arange(n), x[ids[sample]], 11)[:, 1:]
    rows.append({"path": f"graph from the index ({sidecar['factory']}, nprobe {sidecar.get('nprobe')})",
                 "index s": round(index_s, 1), "k-NN / pair search s": round(graph_s, 1),
                 "scores s": round(scores_s, 1), "groups s": round(groups_s, 1),
                 "total s": round(index_s + graph_s + scores_s + groups_s, 1),
                 "recall@10": round(recall_at_k(nbrs[sample, :10], truth, 10), 4),
                 "planted found": round(found_share(groups, planted), 4), "peak RSS MB": round(mem.rss_mb)})
    with PeakMemory() as mem:
        groups, api_s = timed(lambda: curate.near_duplicates(x, threshold))
    rows.append({"path": "curate.near_duplicates(vectors) (k-NN candidates, no index)", "index s": None,
                 "k-NN / pair search s": round(api_s, 1), "scores s": None, "groups s": None,
                 "total s": round(api_s, 1), "recall@10": None,
                 "planted found": round(found_share(groups, planted), 4), "peak RSS MB": round(mem.rss_mb)})
    q = x[np.random.default_rng(2).choice(n, flat_queries, replace=False)]
    flat = faiss.IndexFlatIP(d)
    flat.add(x)
    _, range_s = timed(lambda: flat.range_search(q, threshold))
    _, knn_s = timed(lambda: faiss.knn(q, x, 11, metric=faiss.METRIC_INNER_PRODUCT))
    scale = n / flat_queries
    rows.append({"path": f"flat all-against-all (before; timed on {flat_queries:,} rows x {scale:.0f})",
                 "index s": None, "k-NN / pair search s": round(range_s * scale, 1), "scores s": round(knn_s * scale, 1),
                 "groups s": None, "total s": round((range_s + knn_s) * scale, 1), "recall@10": 1.0,
                 "planted found": None, "peak RSS MB": None})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--threshold", type=float, default=0.95)
    p.add_argument("--flat-queries", type=int, default=10_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-index-bench"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    rows = run(args.n, args.dim, args.threshold, args.flat_queries, args.workdir)
    facts["load_avg_end"] = load_average()
    print(f"### Duplicates and scores at {args.n:,} vectors ({args.dim}-d, {PLANTED:.0%} planted near copies, "
          f"threshold {args.threshold})\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    out = args.out / f"knn_graph-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows}, indent=1, default=float))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
