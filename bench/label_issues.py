"""Mislabeled-image detection on real human label noise: curate's rule next to cleanlab's, fed the
same probabilities, and the kNN-disagreement baseline.

    python -m bench.label_issues --workspace WS [--columns aggre,worse] [-k 20] [--limit N] [--out bench/results]

WS is a workspace built on ../shared/data/cifar10-train (`curate run .../cifar10-train -w WS`); a
workspace of a subset of it works too (its paths are matched to the CSV's). For each noisy column
of CIFAR-10N (../shared/data/cifar10n/cifar10n_labels.csv: `aggre`, 9.0% wrong; `worse`, 40.2%),
the noisy labels replace the folder labels, the out-of-sample class probabilities come from the
workspace's embeddings exactly as `curate label-issues` computes them (the mean of the k neighbours'
vote, self left out, and a 5-fold cross-validated linear model), and every rule flags images from
those same probabilities; two more rows use the neighbours' vote alone (curate's rule, and the simple
kNN-disagreement baseline on it). An image is truly mislabeled when its
noisy label differs from `clean`. Reported per rule at its default threshold: images flagged,
precision, recall, F1, seconds; and, for the self-confidence ranking (the score curate stores),
threshold-free AUROC and average precision.

Rules (curate.quality.label_issues.find_label_issues): `curate (rank_by_self_confidence)`, curate's
default, flags as many images as prune-by-noise-rate does, those with the lowest probability of their
given label; `curate prune_by_noise_rate`, plain confident learning as in the paper; `cleanlab`
(`cleanlab.filter.find_label_issues(labels, pred_probs)`, defaults: also prune by noise rate, so it
should match the row above but for rounding); `curate confident_learning` (the off-diagonals of the
confident joint); `knn disagreement` (argmax != given); `curate planted-flip estimate` (the
`label_issue` flag since issue 29: as many of the lowest-scored as planted label flips estimate can be
flagged at 80% precision, none when the encoder is too weak; curate.quality.label_trust), reported with
its estimated precision next to the measured one. `--columns clean` checks the correct labels (every
flag is wrong there).
cleanlab is a benchmark-only dependency (bench/requirements.txt). --limit N scores a random subset
of N images (neighbours are then searched within the subset only): a quick smoke run.
Prints markdown tables and writes bench/results/label_issues-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table
from curate.index import build_index
from curate.quality import label_trust
from curate.quality.label_issues import (K, METHOD, PROBABILITIES, TEMPERATURE, class_probabilities,
                                         find_label_issues, knn_class_probabilities, knn_disagreement,
                                         self_confidence)
from curate.steps.index import indexed_rows
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
LABELS_CSV = REPO.parent / "shared" / "data" / "cifar10n" / "cifar10n_labels.csv"
log = logging.getLogger("bench.label_issues")


def cleanlab_rule(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    try:
        from cleanlab.filter import find_label_issues as cleanlab_find
    except ImportError as err:
        raise SystemExit("cleanlab is needed for this benchmark: pip install -r bench/requirements.txt") from err
    return cleanlab_find(labels, probs, n_jobs=1)  # n_jobs changes the speed only, not the result


# rule name -> (labels (N,), probs (N, C)) -> (N,) bool flags
RULES = {
    f"curate ({METHOD})": lambda y, p: find_label_issues(y, p),
    "curate prune_by_noise_rate": lambda y, p: find_label_issues(y, p, "prune_by_noise_rate"),
    "cleanlab": cleanlab_rule,
    "curate confident_learning": lambda y, p: find_label_issues(y, p, "confident_learning"),
    "knn disagreement": knn_disagreement,
}


def load_rows(ws: Workspace, csv: Path, limit: int | None, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """(manifest ids (N,), their CIFAR-10N rows) for the embedded images the CSV knows."""
    noisy = pd.read_csv(csv).set_index("file")
    manifest = ws.manifest()
    ids = indexed_rows(ws)
    paths = manifest["path"].astype(str).to_numpy()[ids]
    known = np.isin(paths, noisy.index)
    if not known.any():
        raise SystemExit(f"no image of {ws.path} is in {csv}: build the workspace on ../shared/data/cifar10-train")
    ids, paths = ids[known], paths[known]
    if limit and limit < len(ids):
        pick = np.sort(np.random.default_rng(seed).choice(len(ids), limit, replace=False))
        ids, paths = ids[pick], paths[pick]
    return ids, noisy.loc[paths].reset_index()


def score(flags: np.ndarray, truth: np.ndarray) -> dict:
    hit = int((flags & truth).sum())
    precision = hit / flags.sum() if flags.any() else None
    recall = hit / truth.sum() if truth.any() else None
    f1 = 2 * hit / (flags.sum() + truth.sum()) if flags.any() or truth.any() else None
    return {"flagged": int(flags.sum()), "precision": precision, "recall": recall, "F1": f1}


def ranking(scores: np.ndarray, truth: np.ndarray) -> dict:
    """AUROC and average precision of ranking images by `scores` (high = flagged first)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"AUROC": float(roc_auc_score(truth, scores)), "AP": float(average_precision_score(truth, scores))}


def run_column(column: str, table: pd.DataFrame, vectors: np.ndarray, index, k: int) -> dict:
    classes = sorted(table["clean"].unique())
    clean = np.searchsorted(classes, table["clean"].to_numpy())
    noisy = np.searchsorted(classes, table[column].to_numpy())
    truth = noisy != clean
    t = time.perf_counter()
    probs = class_probabilities(vectors, noisy, len(classes), PROBABILITIES[0], k=k, index=index)
    prob_s = time.perf_counter() - t
    votes = knn_class_probabilities(vectors, noisy, len(classes), k=k, index=index)
    rows = []
    for name, rule in RULES.items():
        t = time.perf_counter()
        flags = np.asarray(rule(noisy, probs), dtype=bool)
        rows.append({"labels": column, "probabilities": PROBABILITIES[0], "rule": name, **score(flags, truth),
                     "seconds": time.perf_counter() - t})
    planted = {}  # the planted copy's probabilities, computed once for both rows

    def probs_of(y: np.ndarray) -> np.ndarray:
        if y.tobytes() not in planted:
            planted[y.tobytes()] = class_probabilities(vectors, y, len(classes), PROBABILITIES[0], k=k, index=index)
        return planted[y.tobytes()]
    trust = {}  # the estimate's evidence, with the agreement gate (the default) and without
    for name, gate in (("curate planted-flip estimate", label_trust.AGREEMENT_MIN),
                       ("the same without the agreement gate", 0.0)):
        t = time.perf_counter()
        flags, info = label_trust.estimate(noisy, probs, probs_of, agreement_min=gate)
        trust = trust or info
        rows.append({"labels": column, "probabilities": PROBABILITIES[0], "rule": name, **score(flags, truth),
                     "estimated precision": info["expected_precision"], "seconds": time.perf_counter() - t})
    for name, rule in ((f"curate ({METHOD})", RULES[f"curate ({METHOD})"]), ("knn disagreement", knn_disagreement)):
        rows.append({"labels": column, "probabilities": "knn", "rule": name,
                     **score(np.asarray(rule(noisy, votes), dtype=bool), truth), "seconds": None})
    info = {"knn_vote_accuracy_vs_clean": float(np.mean(votes.argmax(1) == clean)),"noise_rate": float(truth.mean()), "knn_accuracy_vs_clean": float(np.mean(probs.argmax(1) == clean)),
            "agreement_with_noisy": float(np.mean(probs.argmax(1) == noisy)), "probabilities_s": prob_s,
            "self_confidence_ranking": ranking(-self_confidence(noisy, probs), truth) if 0 < truth.sum() < len(truth)
            else None, "trust": trust}
    return {"rows": rows, **info}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", type=Path, required=True, help="a workspace built on ../shared/data/cifar10-train")
    p.add_argument("--labels-csv", type=Path, default=LABELS_CSV)
    p.add_argument("--columns", default="aggre,worse", help="noisy label columns of the CSV (comma-separated)")
    p.add_argument("-k", type=int, default=K, help=f"neighbours that vote (default {K}, as curate label-issues)")
    p.add_argument("--limit", type=int, help="score a random subset of this many images (smoke run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    facts = machine_facts("cpu", REPO)
    ws = Workspace(args.workspace).require()
    ids, table = load_rows(ws, args.labels_csv, args.limit, args.seed)
    vectors = np.ascontiguousarray(np.asarray(ws.embeddings())[ids], dtype=np.float32)
    index, index_info = build_index(vectors, np.arange(len(ids)))  # as curate label-issues builds it
    log.info("%d images, %s index", len(ids), index_info["factory"])
    results = {column: run_column(column, table, vectors, index, args.k) for column in args.columns.split(",")}
    facts["load_avg_end"] = load_average()

    print(f"\n### Label issues on CIFAR-10N ({len(ids):,} images of {ws.path.name}, k={args.k}, T={TEMPERATURE})\n")
    print(summary_line(facts) + "\n")
    print(markdown_table([row for r in results.values() for row in r["rows"]]))
    print("\n" + markdown_table([{"labels": c, "noise rate": r["noise_rate"],
                                  "accuracy (clean)": r["knn_accuracy_vs_clean"],
                                  "kNN vote alone": r["knn_vote_accuracy_vs_clean"],
                                  "agreement (noisy)": r["agreement_with_noisy"],
                                  "self-confidence AUROC": (r["self_confidence_ranking"] or {}).get("AUROC"),
                                  "self-confidence AP": (r["self_confidence_ranking"] or {}).get("AP"),
                                  "trust": r["trust"]["too_weak"] and "too weak" or "flags",
                                  "noise estimate": r["trust"]["noise_rate"],
                                  "planted AUROC": r["trust"]["planted_auroc"],
                                  "probabilities s": r["probabilities_s"]} for c, r in results.items()]))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out / f"label_issues-{stamp}.json"
    out.write_text(json.dumps({"workspace": str(ws.path), "images": len(ids), "limit": args.limit, "k": args.k,
                               "temperature": TEMPERATURE, "index": index_info, "machine": facts,
                               "results": results}, indent=2, default=str))
    print(f"\n-> {out}")


if __name__ == "__main__":
    main()
