"""`curate dedup`: exact (sha1) and near duplicates (pixel fingerprints + embeddings) -> duplicates.parquet.

Near duplicates come from `curate.quality.pairs`: candidate pairs from both kinds of evidence,
scored, with a null of certainly-different pairs beside them. Files written (all atomic):

    duplicates.parquet       the contract table: id, group, kind (exact | near), keeper
    duplicates.json          threshold, how it was chosen (calibrated / marks / given), its expected
                             precision, the search settings, counts
    duplicate_pairs.parquet  every scored candidate pair: a, b (ids), pixel, embedding, score,
                             weight; the null pairs too (null True), for recalibration. Which pairs
                             are duplicates follows from the threshold and the marks: `read_pairs`
    duplicate_marks.parquet  pairs a person marked same / different (the app's Duplicates page);
                             they move the threshold (`threshold_from_marks`) on every later run

`regroup` re-derives groups from the pairs and marks without measuring anything again, which is
what marking a pair in the app triggers; the (large) pairs file is written once, by `dedup`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate import storage
from curate.clock import now
from curate.data.items import of_kind, resolve_kind
from curate.quality.leaks import leaks, splits_of
from curate.data.manifest import ok_mask
from curate.generations import inputs_of, write_sidecar
from curate.locks import locked
from curate.quality import exact_duplicates, groups_table
from curate.quality.calibration import TARGET_PRECISION, calibrate, expected_precision, threshold_from_marks
from curate.quality.duplicates import groups_from_pairs
from curate.quality.pairs import MIRRORED_COPY, PairConfig, score_pairs
from curate.progress import Progress
from curate.steps.graph import knn_graph, positions
from curate.steps.options import RunOptions
from curate.steps.quality import fingerprints, quality, saved_config
from curate.workspace import Workspace

log = logging.getLogger(__name__)
MARK_COLUMNS = ["a", "b", "same", "score", "marked"]


def dedup(ws: Workspace, threshold: float | None = None, cfg: PairConfig | None = None,
          target: float = TARGET_PRECISION, progress: Progress | None = None, kind: str | None = None) -> pd.DataFrame:
    """Score candidate pairs, choose the threshold, group; returns the duplicates.parquet table.

    `threshold` fixes the score threshold; otherwise it is calibrated for `target` expected
    precision, then moved by the workspace's marked pairs, if any. Fingerprints are measured
    first where missing (`curate quality`); embeddings are used when the workspace has them. `kind`: the
    items compared with each other (images, objects or frames; curate.data.items.resolve_kind).
    """
    cfg = PairConfig() if cfg is None else cfg
    manifest = ws.manifest()
    kind = resolve_kind(manifest, kind)
    rows = np.flatnonzero(ok_mask(manifest) & of_kind(manifest, kind))
    if _unmeasured(ws, manifest):
        quality(ws, saved_config(ws), progress=progress)  # the thresholds a person set stay
    inputs = inputs_of(ws.path, [ws.embeddings_file.name]) if ws.embeddings_file.exists() else {}
    thumbs = np.asarray(fingerprints(ws))[rows]
    vectors = np.asarray(ws.embeddings())[rows] if ws.embeddings_file.exists() else None
    if vectors is not None and len(vectors) and not np.isfinite(vectors).all():
        raise ValueError("embeddings.npy holds non-finite values: run `curate embed` again")
    sides = np.minimum(manifest["width"].to_numpy(), manifest["height"].to_numpy())[rows]
    neighbours = embedding_neighbours(ws, rows, cfg.k, progress) if vectors is not None else None
    pairs = score_pairs(thumbs, vectors, cfg, progress, sides, neighbours)
    pairs["a"], pairs["b"] = rows[pairs["a"].to_numpy()], rows[pairs["b"].to_numpy()]  # row positions -> ids
    real, null = pairs[~pairs["null"]], pairs[pairs["null"] & (pairs["pixel"] < MIRRORED_COPY)]
    calibration = calibrate(real["score"], null["score"], target, real["weight"], null["weight"])
    calibration["mirrored_copies"] = int((pairs["null"] & (pairs["pixel"] >= MIRRORED_COPY)).sum())
    settings = {"pairs": cfg.to_dict(), "embeddings": vectors is not None, "calibration": calibration,
                "fixed_threshold": threshold, "inputs": inputs, "kind": kind}
    with _writing(ws):
        storage.write_parquet(ws.duplicate_pairs_file, pairs)
        storage.write_json(ws.duplicate_search_file, settings)
        return regroup(ws, pairs, settings)


def _writing(ws: Workspace):
    """The lock of the duplicate files: the search, a person's marks and their regrouping, one at a time."""
    return locked(ws.locks_dir, "duplicates", what="another duplicate search or marking")


def embedding_neighbours(ws: Workspace, rows: np.ndarray, k: int, progress: Progress | None = None) -> np.ndarray:
    """(len(rows), k) positions in `rows` of each row's k nearest by embedding (-1: none), from the
    workspace's k-NN graph (shared with the scores and the map)."""
    graph_rows, _, graph_ids = knn_graph(ws, k, progress)
    out = np.full((len(rows), k), -1, np.int64)
    at = positions(graph_rows, rows)
    out[at[at >= 0]] = positions(graph_ids[at >= 0], rows)
    return out


def regroup(ws: Workspace, pairs: pd.DataFrame | None = None, settings: dict | None = None) -> pd.DataFrame:
    """Threshold (fixed, marks, or calibrated, in that order), groups and keepers from the pairs
    (default: the saved ones) -> duplicates.parquet and duplicates.json."""
    settings = storage.read_json(ws.duplicate_search_file) if settings is None else settings
    pairs = pd.read_parquet(ws.duplicate_pairs_file) if pairs is None else pairs
    calibration = settings["calibration"]
    marks = read_marks(ws)
    if settings.get("fixed_threshold") is not None:
        threshold, source, disagree = float(settings["fixed_threshold"]), "given", None
    elif len(marks):
        threshold, disagree = threshold_from_marks(marks["score"], marks["same"], calibration["threshold"])
        source = "marks"
    else:
        threshold, source, disagree = calibration["threshold"], "calibrated", None
    real = ~pairs["null"].to_numpy()
    duplicate = is_duplicate(pairs, threshold, marks)

    manifest = ws.manifest()
    rows = np.flatnonzero(ok_mask(manifest) & of_kind(manifest, settings.get("kind", "image")))
    sub = manifest.iloc[rows]
    position = np.full(len(manifest), -1)
    position[rows] = np.arange(len(rows))
    found = pairs.loc[duplicate, ["a", "b"]].to_numpy()
    found = found[(position[found] >= 0).all(1)] if len(found) else found.reshape(0, 2)
    near = groups_from_pairs(position[found], len(rows))
    exact = exact_duplicates(sub["sha1"].astype(object).tolist())
    pixels = (sub["width"] * sub["height"]).to_numpy()
    sharpness = sub["sharpness"].to_numpy(np.float64, na_value=np.nan) if "sharpness" in sub else None
    table = groups_table(exact, near, rows, pixels, sharpness)
    storage.write_parquet(ws.duplicates_file, table)
    null = pairs["null"] & (pairs["pixel"] < MIRRORED_COPY)
    expected = expected_precision(pairs.loc[real, "score"], pairs.loc[null, "score"], threshold,
                                  pairs.loc[real, "weight"], pairs.loc[null, "weight"])
    write_sidecar(ws.duplicates_file, {
        "threshold": threshold, "threshold_source": source, "calibrated": source == "calibrated",
        "expected_precision": expected, "calibration": calibration, "marks": int(len(marks)),
        "marks_disagreeing": disagree, "pairs_found": int(duplicate.sum()), "candidate_pairs": int(real.sum()),
        "search": settings["pairs"], "embeddings": settings["embeddings"], "kind": settings.get("kind", "image"),
        "created": now(),
        "groups": int(table["group"].nunique())}, settings.get("inputs"))  # the pairs' embeddings
    return table


def is_duplicate(pairs: pd.DataFrame, threshold: float, marks: pd.DataFrame) -> np.ndarray:
    """(P,) bool: real pairs at or above the threshold, with a person's marks overriding the score both ways."""
    real = ~pairs["null"].to_numpy()
    duplicate = real & (pairs["score"].to_numpy() >= threshold)
    duplicate |= real & _marked(pairs, marks, True)
    return duplicate & ~_marked(pairs, marks, False)


def read_pairs(ws: Workspace) -> pd.DataFrame:
    """duplicate_pairs.parquet with a `duplicate` column, derived from the current threshold and marks."""
    pairs = pd.read_parquet(ws.duplicate_pairs_file)
    threshold = storage.read_json(ws.sidecar(ws.duplicates_file))["threshold"]
    return pairs.assign(duplicate=is_duplicate(pairs, threshold, read_marks(ws)))


def mark_pairs(ws: Workspace, pairs: list[tuple[int, int]], same: bool) -> pd.DataFrame:
    """Record that a person judged these pairs (ids) the same image or not; the last mark per pair wins.

    Then regroups with the new marks. Returns the marks table.
    """
    if not ws.duplicate_pairs_file.exists():
        raise FileNotFoundError(f"no duplicate pairs in {ws.path}: run `curate dedup -w {ws.path}` first")
    with _writing(ws):
        return _mark_pairs(ws, pairs, same)


def _mark_pairs(ws: Workspace, pairs: list[tuple[int, int]], same: bool) -> pd.DataFrame:
    all_pairs = pd.read_parquet(ws.duplicate_pairs_file)
    scored = all_pairs[~all_pairs["null"]].set_index(["a", "b"])["score"]
    new = []
    for a, b in pairs:
        a, b = sorted((int(a), int(b)))
        if (a, b) not in scored.index:
            raise ValueError(f"images {a} and {b} are not a candidate pair in {ws.path}")
        new.append({"a": a, "b": b, "same": bool(same), "score": float(scored[(a, b)]), "marked": now()})
    marks = pd.concat([read_marks(ws), pd.DataFrame(new, columns=MARK_COLUMNS)], ignore_index=True)
    marks = marks.drop_duplicates(["a", "b"], keep="last").reset_index(drop=True)
    storage.write_parquet(ws.duplicate_marks_file, marks)
    regroup(ws, all_pairs)
    return marks


def clear_marks(ws: Workspace) -> None:
    with _writing(ws):
        ws.duplicate_marks_file.unlink(missing_ok=True)
        if ws.duplicate_pairs_file.exists():
            regroup(ws)


def read_marks(ws: Workspace) -> pd.DataFrame:
    file = ws.duplicate_marks_file
    return pd.read_parquet(file) if file.exists() else pd.DataFrame(columns=MARK_COLUMNS)


def review_pairs(ws: Workspace, n: int = 24) -> pd.DataFrame:
    """The n unmarked candidate pairs nearest the threshold, either side: the ones worth a look."""
    pairs = pd.read_parquet(ws.duplicate_pairs_file, columns=["a", "b", "pixel", "embedding", "score", "null"])
    threshold = storage.read_json(ws.sidecar(ws.duplicates_file))["threshold"]
    pairs = pairs[~pairs["null"]]
    marks = read_marks(ws)
    if len(marks):
        marked = pd.MultiIndex.from_frame(marks[["a", "b"]].astype("int64"))
        pairs = pairs[~pd.MultiIndex.from_frame(pairs[["a", "b"]]).isin(marked)]
    order = np.argsort(np.abs(pairs["score"].to_numpy() - threshold), kind="stable")[:n]
    return pairs.iloc[order].sort_values("score", ascending=False).reset_index(drop=True)


def _unmeasured(ws: Workspace, manifest: pd.DataFrame) -> bool:
    """True when some usable image has no fingerprint yet (they are measured with the quality metrics)."""
    if not ws.fingerprints_file.exists() or len(fingerprints(ws)) != len(manifest) or "entropy" not in manifest:
        return True
    return bool(manifest.loc[ok_mask(manifest), "entropy"].isna().any())


def _marked(pairs: pd.DataFrame, marks: pd.DataFrame, same: bool) -> np.ndarray:
    if not len(marks):
        return np.zeros(len(pairs), bool)
    chosen = marks.loc[marks["same"] == same, ["a", "b"]].astype("int64")
    return pd.MultiIndex.from_frame(pairs[["a", "b"]]).isin(pd.MultiIndex.from_frame(chosen))


@dataclass(frozen=True)
class DedupSummary:
    exact_groups: int
    near_groups: int
    images: int  # images in any group
    pairs: int  # pairs at or above the threshold
    threshold: float
    how: str  # how the threshold was chosen
    expected_precision: float
    mirrored_unflagged: int  # mirrored copies seen while --flips is off
    file: Path

    def lines(self) -> list[str]:
        note = (f"; {self.mirrored_unflagged} mirrored copies seen (--flips counts them)"
                if self.mirrored_unflagged else "")
        return [f"{self.exact_groups} exact and {self.near_groups} near-duplicate groups ({self.images} images): "
                f"{self.pairs} pairs at score >= {self.threshold:.3f} ({self.how}; expected precision "
                f"{self.expected_precision:.2f}){note} -> {self.file}"]


def across_splits(ws: Workspace, column: str = "split", reference: str = "train") -> pd.DataFrame:
    """Items of other splits with a copy in `reference` (curate.quality.leaks), from the saved duplicate groups;
    written to duplicates_across.parquet. Splits: the manifest's `column`, or the split folders of the paths."""
    if not ws.duplicates_file.exists():
        raise FileNotFoundError(f"no duplicate groups in {ws.path}: run `curate dedup -w {ws.path}` first")
    manifest = ws.manifest()
    splits = splits_of(manifest, column)
    found = set(s for s in splits if s is not None)
    if reference not in found or len(found) < 2:
        raise ValueError(f"--across {column}: the items need a {reference!r} split and another one (found "
                         f"{', '.join(sorted(found)) or 'none'}); name them by folders (train/, test/) or a column")
    table = leaks(ws.duplicates(), splits, reference)
    storage.write_parquet(ws.leaks_file, table)
    return table


def summarize(ws: Workspace, table: pd.DataFrame) -> DedupSummary:
    """The summary of the duplicate search that wrote `table` (duplicates.parquet) and its sidecar."""
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    kinds = table.groupby("kind")["group"].nunique().to_dict() if len(table) else {}
    how = {"calibrated": f"calibrated for {meta['calibration']['target']:.0%} precision",
           "marks": f"moved by {meta['marks']} marked pairs", "given": "given"}[meta["threshold_source"]]
    mirrored = 0 if meta["search"]["flips"] else meta["calibration"].get("mirrored_copies", 0)
    return DedupSummary(kinds.get("exact", 0), kinds.get("near", 0), len(table), meta["pairs_found"],
                        meta["threshold"], how, meta["expected_precision"], mirrored, ws.duplicates_file)


def run(ws: Workspace, options: RunOptions | None = None, progress: Progress | None = None,
        cfg: PairConfig | None = None, target: float = TARGET_PRECISION) -> DedupSummary:
    """The dedup step, seeded by `options.seed` (`curate dedup` passes its pair search settings and target
    precision)."""
    options = options or RunOptions(workspace=ws.path)
    cfg = cfg or PairConfig(seed=options.seed or 0)
    return summarize(ws, dedup(ws, options.dedup_threshold, cfg, target, progress=progress, kind=options.kind))
