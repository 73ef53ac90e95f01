"""Label issues on object boxes: planted class flips on the coco128 boxes, curate's rules next to cleanlab's,
all fed the same out-of-sample probabilities.

    python -m bench.label_issues_objects --workspace WS [--flip 0.1] [--seeds 0,1,2] [-k 20]

WS is a workspace of ../shared/data/coco128-detect scanned with its boxes
(`curate run .../coco128-detect -w WS --annotations .../coco128-detect/data.yaml`). Its object labels are
taken as clean; `--flip` of them (seeded) are changed to another class drawn in proportion to the class
sizes, and every rule of bench/label_issues.py (curate's default ranking, confident learning, cleanlab's
`find_label_issues`, kNN disagreement, and the planted-flip trust estimate that decides `label_issue`)
judges the flipped labels. A box is truly mislabeled when its label was flipped. Precision, recall, F1 per
rule and seed; the estimate's precision next to the measured one. Prints markdown tables and writes
bench/results/label_issues_objects-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from bench.label_issues import run_column
from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table
from curate.data.items import kinds
from curate.index import build_index
from curate.quality.label_issues import K
from curate.steps.index import indexed_rows
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.label_issues_objects")


def flipped(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """`labels` with `share` of them (seeded) changed to another class, drawn in proportion to class sizes
    (a person mislabels a box as a common class more often than as a rare one)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    out = labels.copy()
    for i in rng.choice(len(labels), int(round(share * len(labels))), replace=False):
        weights = np.where(classes == labels[i], 0, counts).astype(float)
        out[i] = rng.choice(classes, p=weights / weights.sum())
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True)
    p.add_argument("--flip", type=float, default=0.1, help="share of box labels flipped (default 0.1)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("-k", type=int, default=K)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    facts = machine_facts("cpu", REPO)
    ws = Workspace(args.workspace).require()
    manifest = ws.manifest()
    ids = indexed_rows(ws)
    ids = ids[(kinds(manifest)[ids] == "object") & manifest["label"].iloc[ids].notna().to_numpy()]
    if not len(ids):
        raise SystemExit(f"no embedded object with a label in {ws.path}: scan with --annotations and embed first")
    clean = manifest["label"].iloc[ids].astype(str).to_numpy()
    vectors = np.ascontiguousarray(np.asarray(ws.embeddings())[ids], dtype=np.float32)
    index, _ = build_index(vectors, np.arange(len(ids)))
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        table = pd.DataFrame({"clean": clean, f"flip{seed}": flipped(clean, args.flip, seed)})
        results[f"seed {seed}"] = run_column(f"flip{seed}", table, vectors, index, args.k)
    facts["load_avg_end"] = load_average()

    print(f"\n### Label issues on {len(ids):,} coco128 boxes, {args.flip:.0%} planted class flips "
          f"({len(np.unique(clean))} classes, k={args.k})\n")
    print(summary_line(facts) + "\n")
    rows = [row for r in results.values() for row in r["rows"] if row["probabilities"] != "knn"]
    print(markdown_table(rows))
    print("\n" + markdown_table([{"run": name, "agreement (flipped)": r["agreement_with_noisy"],
                                  "accuracy (clean)": r["knn_accuracy_vs_clean"],
                                  "self-confidence AUROC": (r["self_confidence_ranking"] or {}).get("AUROC"),
                                  "trust": "too weak" if r["trust"]["too_weak"] else "flags",
                                  "estimated precision": r["trust"]["expected_precision"]}
                                 for name, r in results.items()]))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"label_issues_objects-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"workspace": str(ws.path), "objects": int(len(ids)), "flip": args.flip, "k": args.k,
                               "machine": facts, "results": results}, indent=2, default=str))
    print(f"\n-> {out}")


if __name__ == "__main__":
    main()
