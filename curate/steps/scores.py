"""`curate scores`: per-image embedding scores -> scores.parquet (id, uniqueness, typicality, outlier),
and `image_table`, the manifest joined with every per-image column the workspace has (scores,
duplicate groups, label issues, tags), which the selection filters and the app read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from curate import storage
from curate.clock import now
from curate.data.items import kinds
from curate.data.tags import read_tags
from curate.generations import inputs_of, load_checked, write_sidecar
from curate.progress import Progress
from curate.steps.label_issues import issue_columns
from curate.steps.options import RunOptions
from curate.workspace import Workspace

SCORE_COLUMNS = ["uniqueness", "typicality", "outlier"]


def compute_scores(ws: Workspace, k: int = 10, progress: Progress | None = None) -> pd.DataFrame:
    """Scores from the workspace's k-NN graph (computed once, shared with dedup and the map)."""
    from curate.quality.scores import scores_from
    from curate.steps.graph import knn_graph

    inputs = inputs_of(ws.path, [ws.embeddings_file.name])
    ids, sims, _ = knn_graph(ws, k, progress)
    kind = kinds(ws.manifest())[ids]
    # each kind on its own scale: an object's typical neighbour is not an image's (curate.data.items)
    table = pd.concat([scores_from(sims[kind == k])[SCORE_COLUMNS].assign(id=ids[kind == k])
                       for k in sorted(set(kind.tolist()))] or [pd.DataFrame(columns=[*SCORE_COLUMNS, "id"])])
    table = table[["id", *SCORE_COLUMNS]].sort_values("id").reset_index(drop=True)
    storage.write_parquet(ws.scores_file, table)
    write_sidecar(ws.scores_file, {"k": k, "n": int(len(table)), "created": now(),
                                   "outliers": int(table["outlier"].sum())}, inputs)
    return table


def image_table(ws: Workspace, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """The manifest (row i = id i) with the scores, duplicate group/keeper, label issues
    (label_issue, suggested_label, label_issue_score, label_fixed) and a `tags` column
    (comma-separated) added where the workspace has them."""
    table = (ws.manifest() if manifest is None else manifest).copy()
    if ws.scores_file.exists():
        scores = load_checked(ws, [ws.scores_file], lambda: pd.read_parquet(ws.scores_file)).set_index("id")
        for col in SCORE_COLUMNS:
            table[col] = scores[col].reindex(table["id"]).to_numpy()
        table["outlier"] = table["outlier"].fillna(False).astype(bool)
    dups = ws.duplicates()
    if dups is not None and len(dups):
        dups = dups.set_index("id")
        table["duplicate_group"] = dups["group"].reindex(table["id"]).to_numpy()
        table["duplicate_keeper"] = dups["keeper"].reindex(table["id"]).to_numpy()
        table["duplicate"] = table["duplicate_group"].notna() & ~table["duplicate_keeper"].fillna(True).astype(bool)
    for col, values in issue_columns(ws).items():  # label issues and confirmed label fixes
        table[col] = values.reindex(table["id"]).to_numpy()
    if "label_issue" in table:
        table["label_issue"] = table["label_issue"].fillna(False).astype(bool)
    tags = read_tags(ws)
    if len(tags):
        joined = tags.groupby("id")["tag"].agg(lambda t: ",".join(sorted(t)))
        table["tags"] = joined.reindex(table["id"]).fillna("").to_numpy()
    return table


@dataclass(frozen=True)
class ScoresSummary:
    images: int
    outliers: int
    file: Path

    def lines(self) -> list[str]:
        return [f"scores of {self.images} images (uniqueness, typicality, {self.outliers} outliers) -> {self.file}"]


def run(ws: Workspace, options: RunOptions | None = None, progress: Progress | None = None,
        k: int = 10) -> ScoresSummary:
    """The scores step (`curate scores -k` sets the neighbours per image)."""
    table = compute_scores(ws, k=k, progress=progress)
    return ScoresSummary(len(table), int(table["outlier"].sum()), ws.scores_file)
