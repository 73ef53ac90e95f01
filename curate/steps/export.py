"""`curate export`: materialise a named selection as a folder."""
from __future__ import annotations

from pathlib import Path

from curate import storage
from curate.export import export_files
from curate.progress import Progress
from curate.workspace import Workspace, now


def export_selection(ws: Workspace, selection: str, target: str | Path, mode: str = "copy",
                     progress: Progress | None = None) -> Path:
    chosen = ws.selection(selection).sort_values("rank")
    manifest = ws.manifest()
    rows = manifest.iloc[chosen["id"].to_numpy()][["id", "path", "label", "width", "height", "sha1"]]
    rows = rows.assign(rank=chosen["rank"].to_numpy(), score=chosen["score"].to_numpy())
    rows = rows[manifest["status"].iloc[rows["id"]].to_numpy() == "ok"]
    csv = export_files(ws.root, rows.reset_index(drop=True), Path(target), mode, progress)
    storage.write_json(csv.with_name("export.json"), {"workspace": str(ws.path), "selection": selection,
                                                      "selection_meta": ws.selection_meta(selection), "mode": mode,
                                                      "n": int(len(rows)), "created": now()})
    return csv
