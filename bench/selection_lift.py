"""Selection lift: does a strategy pick images that teach a classifier more than random ones do?

    python -m bench.selection_lift --workspace WS [--n 10,100,1000] [--seeds 5] [--strategy kcenter ...]

For each strategy, budget n and seed: select n images from the workspace's training pool (its
embeddings; the held-out split is never selectable), train a linear probe on the n selected
embeddings with their labels, score it on the held-out split. Reports accuracy minus that of n
random images with the same seed (mean ± std over seeds), the literature's protocol (TypiClust,
ProbCover). Labels are used only here, for scoring; the selection never sees them.
Prints a markdown table and writes bench/results/selection_lift-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from pathlib import Path

import numpy as np

from curate.evaluate import linear_probe
from curate.select import STRATEGIES, select
from curate.steps.evaluate import labelled_split
from curate.steps.index import indexed_rows
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.selection_lift")
PROBE_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)


def probe_accuracy(x: np.ndarray, y: np.ndarray, rows: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   seed: int) -> float:
    return linear_probe(x[rows], y[rows], test_x, test_y, weight_decays=PROBE_WEIGHT_DECAYS, seed=seed).top1


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True, help="a workspace of a labelled folder, trained with a holdout")
    p.add_argument("--n", default="10,100,1000", help="budgets, comma-separated")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--strategy", action="append", help="strategy to compare with random (default: all registered)")
    p.add_argument("--test", type=int, default=5000, help="held-out images scored (a fixed random subset)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    ws = Workspace(args.workspace).require()
    manifest = ws.manifest()
    split, holdout, _ = labelled_split(ws, manifest)
    embedded = np.zeros(len(manifest), bool)
    embedded[indexed_rows(ws)] = True
    pool = np.flatnonzero(split.train & embedded)
    test = np.flatnonzero(split.test & embedded)
    test = np.sort(np.random.default_rng(0).choice(test, min(args.test, len(test)), replace=False))
    vectors = np.asarray(ws.embeddings())
    x, y = np.ascontiguousarray(vectors[pool]), split.y[pool]
    test_x, test_y = vectors[test], split.y[test]
    # auto is typiclust or facility_location by budget: its rows would repeat theirs
    strategies = args.strategy or [s for s in STRATEGIES.names() if s not in ("random", "auto")]
    budgets = [int(v) for v in args.n.split(",")]

    acc: dict[tuple[str, int], list[float]] = {}
    seconds: dict[tuple[str, int], list[float]] = {}
    for n in budgets:
        for strategy in ["random", *strategies]:
            for seed in range(args.seeds):
                t = time.perf_counter()
                rows = select(x, n, strategy, seed=seed)
                seconds.setdefault((strategy, n), []).append(time.perf_counter() - t)
                acc.setdefault((strategy, n), []).append(probe_accuracy(x, y, rows, test_x, test_y, seed))
            log.info("n=%d %s: %.2f%%", n, strategy, 100 * np.mean(acc[(strategy, n)]))

    rows = []
    for strategy in ["random", *strategies]:
        row = {"strategy": strategy}
        for n in budgets:
            a, base = np.array(acc[(strategy, n)]), np.array(acc[("random", n)])
            lift = 100 * (a - base)
            row[f"n={n} acc %"] = f"{100 * a.mean():.1f}"
            row[f"n={n} lift"] = "" if strategy == "random" else f"{lift.mean():+.1f} ± {lift.std():.1f}"
        row["select s (n max)"] = f"{np.mean(seconds[(strategy, budgets[-1])]):.2f}"
        rows.append(row)
    header = list(rows[0])
    print(f"pool {len(pool):,} training images, {len(test):,} held-out test images, {args.seeds} seeds; "
          "lift = accuracy - random's with the same seed, in points (mean ± std)")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r[h]) for h in header) + " |")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"selection_lift-{stamp}.json").write_text(json.dumps({
        "workspace": str(ws.path), "pool": int(len(pool)), "test": int(len(test)), "seeds": args.seeds,
        "holdout": holdout, "table": rows,
        "accuracy": {f"{s}@{n}": v for (s, n), v in acc.items()},
        "seconds": {f"{s}@{n}": v for (s, n), v in seconds.items()}}, indent=2))


if __name__ == "__main__":
    main()
