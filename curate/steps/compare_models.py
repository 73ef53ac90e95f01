"""`curate compare-models -w A -w B`: how much two workspaces' encoders agree, without labels.

The images both workspaces embedded (the same relative path and the same content, sha1) form one
pool; a seeded sample of them are the queries; each encoder's k nearest images *within that pool*
are compared by Jaccard@k (curate.evaluate.agreement). The report says how alike the two
neighbourhoods are overall and lists the queries where they differ most, with both neighbour
lists, so a person can look at what a longer run (or another recipe) changed. With labels, each
encoder's neighbour label purity is reported beside it, as a hint of which one is better.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from curate.clock import now
from curate.data.manifest import labels as manifest_labels
from curate.evaluate.agreement import jaccard_rows, knn_ids, label_purity
from curate.steps.index import indexed_rows
from curate.workspace import Workspace

HISTOGRAM_BINS = np.linspace(0.0, 1.0, 11)


def common_images(a: Workspace, b: Workspace) -> pd.DataFrame:
    """Images embedded in both workspaces: columns id_a, id_b, path, label (from A); matched by
    relative path and sha1, so a file that changed between the two scans is left out."""
    def embedded(ws: Workspace) -> pd.DataFrame:
        ws.require()
        if not ws.embeddings_file.exists():
            raise FileNotFoundError(f"{ws.path} has no embeddings: run `curate embed IMAGES -w {ws.path}` first")
        manifest = ws.manifest()
        rows = indexed_rows(ws)
        rows = rows[rows < len(manifest)]
        return manifest.iloc[rows][["id", "path", "sha1", "label"]]

    merged = embedded(a).merge(embedded(b), on=["path", "sha1"], suffixes=("_a", "_b"))
    return merged.rename(columns={"label_a": "label"})[["id_a", "id_b", "path", "label"]].reset_index(drop=True)


def compare_models(a: Workspace, b: Workspace, k: int = 10, sample: int = 2000, show: int = 12,
                   seed: int = 0) -> dict:
    """Jaccard@k of the two encoders' neighbour sets over `sample` query images (all when fewer), its
    distribution, and the `show` queries where the two disagree most (ids in each workspace)."""
    if k < 1 or sample < 1:
        raise ValueError(f"k and --sample must be at least 1 (got k={k}, sample={sample})")
    pool = common_images(a, b)
    if len(pool) < k + 2:
        raise ValueError(f"{a.path} and {b.path} share {len(pool)} embedded images (same path and content): "
                         f"too few to compare {k} neighbours; both must be built on the same images")
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.permutation(len(pool))[:sample])
    neighbours = {}
    for name, ws, ids in (("a", a, pool["id_a"]), ("b", b, pool["id_b"])):
        vectors = np.asarray(ws.embeddings())[ids.to_numpy()]
        neighbours[name] = knn_ids(vectors, queries, k)
    jaccard = jaccard_rows(neighbours["a"], neighbours["b"])
    counts, _ = np.histogram(jaccard, HISTOGRAM_BINS)
    report = {
        "workspaces": {"a": str(a.path), "b": str(b.path)},
        "models": {"a": _model_summary(a), "b": _model_summary(b)},
        "common_images": int(len(pool)), "queries": int(len(queries)), "k": int(k), "seed": int(seed),
        "jaccard_mean": float(jaccard.mean()), "jaccard_median": float(np.median(jaccard)),
        "identical_share": float((jaccard == 1.0).mean()), "disjoint_share": float((jaccard == 0.0).mean()),
        "histogram": {"edges": HISTOGRAM_BINS.round(2).tolist(), "counts": counts.tolist()},
        "created": now(),
    }
    labels = manifest_labels(pool)
    if labels is not None:
        labels = np.asarray([str(x) if x is not None else "" for x in labels], dtype=object)
        report["label_purity"] = {name: label_purity(n, labels, queries) for name, n in neighbours.items()}
    order = np.argsort(jaccard, kind="stable")[:show]

    def ids(name: str, rows: np.ndarray) -> list[int]:
        return pool[f"id_{name}"].to_numpy()[rows[rows >= 0]].tolist()

    report["disagreements"] = [
        {"id_a": int(pool["id_a"].iat[queries[i]]), "id_b": int(pool["id_b"].iat[queries[i]]),
         "path": str(pool["path"].iat[queries[i]]), "jaccard": float(jaccard[i]),
         "neighbours_a": ids("a", neighbours["a"][i]), "neighbours_b": ids("b", neighbours["b"][i])}
        for i in order]
    return report


def summary_line(report: dict) -> str:
    line = (f"Jaccard@{report['k']} of the two encoders' neighbour sets over {report['queries']:,} of "
            f"{report['common_images']:,} shared images: mean {report['jaccard_mean']:.3f}, median "
            f"{report['jaccard_median']:.3f}; identical for {report['identical_share']:.1%}, disjoint for "
            f"{report['disjoint_share']:.1%}")
    purity = report.get("label_purity")
    if purity:
        line += f"; neighbour label purity A {purity['a']:.1%}, B {purity['b']:.1%}"
    return line


def _model_summary(ws: Workspace) -> dict:
    """What trained the workspace's encoder, in a few fields (from model/config.json)."""
    config = ws.model_config() or {}
    trained = config.get("trained", {})
    tasks = [t.get("name") for t in config.get("tasks", [])] if isinstance(config.get("tasks"), list) else []
    return {"recipe": config.get("recipe"), "tasks": tasks, "architecture": config.get("architecture"),
            "image_size": config.get("image_size"), "steps": trained.get("steps"),
            "minutes": round(trained["elapsed_s"] / 60, 1) if trained.get("elapsed_s") else None,
            "created": config.get("created")}
