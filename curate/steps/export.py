"""`curate export`: materialise a named selection (or any list of ids, e.g. the app's basket) as a
folder or a zip, with manifests that record where it came from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from curate.export import export_files, export_zip
from curate.progress import Progress
from curate.workspace import Workspace, now

EXPORT_COLUMNS = ["id", "path", "label", "width", "height", "sha1"]


def export_rows(ws: Workspace, ids, ranks=None, scores=None) -> pd.DataFrame:
    """Manifest rows of `ids` (in the given order) that are readable images, with rank and score."""
    manifest = ws.manifest()
    ids = np.asarray(ids, dtype=np.int64)
    rows = manifest.iloc[ids][EXPORT_COLUMNS].assign(
        rank=np.arange(len(ids)) if ranks is None else np.asarray(ranks),
        score=np.nan if scores is None else np.asarray(scores))
    return rows[manifest["status"].iloc[ids].to_numpy() == "ok"].reset_index(drop=True)


def selection_rows(ws: Workspace, selection: str) -> pd.DataFrame:
    chosen = ws.selection(selection).sort_values("rank")
    return export_rows(ws, chosen["id"], chosen["rank"], chosen["score"])


def provenance(ws: Workspace, selection: str | None, n: int) -> dict:
    meta = ws.selection_meta(selection) if selection else {}
    return {"workspace": str(ws.path), "image_root": str(ws.root), "selection": selection,
            "strategy": meta.get("strategy"), "parameters": meta.get("parameters"), "seed": meta.get("seed"),
            "selection_meta": meta, "n": n, "created": now()}


def export_selection(ws: Workspace, selection: str, target: str | Path, mode: str = "copy",
                     progress: Progress | None = None) -> Path:
    """Export a saved selection into `target`; returns the manifest CSV."""
    rows = selection_rows(ws, selection)
    return export_files(ws.root, rows, Path(target), mode, progress, provenance(ws, selection, len(rows)))


def export_ids(ws: Workspace, ids, target: str | Path, mode: str = "copy", progress: Progress | None = None,
               source: str = "ids") -> Path:
    """Export any ids (e.g. the basket) into `target`; returns the manifest CSV."""
    rows = export_rows(ws, ids)
    return export_files(ws.root, rows, Path(target), mode, progress,
                        {**provenance(ws, None, len(rows)), "source": source})


def zip_selection(ws: Workspace, destination, selection: str | None = None, ids=None,
                  progress: Progress | None = None) -> int:
    """Write a zip of a selection (or of `ids`) to a path or binary file object; returns the image count."""
    rows = selection_rows(ws, selection) if selection else export_rows(ws, ids)
    export_zip(ws.root, rows, destination, provenance(ws, selection, len(rows)), progress)
    return len(rows)
