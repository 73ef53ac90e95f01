"""`curate export`: materialise a named selection (or any list of ids, e.g. the app's basket) as a
folder or a zip, with manifests that record where it came from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.clock import now
from curate.export import EXPORT_MODES, export_files, export_zip
from curate.data.items import kinds
from curate.export.folder import inside_target, zip_member
from curate.export.items import ANNOTATION_FORMATS, export_annotations, export_crops, export_frames
from curate.progress import Progress
from curate.workspace import Workspace

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


EXPORT_FORMATS = ("folder", *ANNOTATION_FORMATS, "crops")


def export_formatted(ws: Workspace, selection: str | None, target: str | Path, fmt: str,
                     progress: Progress | None = None, ids=None) -> Path:
    """Export a saved selection as `fmt`: an annotation format (yolo, coco, voc, labelstudio: the selected images
    with their boxes, or a selection of objects as their parent images with only those boxes) or `crops` (object
    crops in class folders). Label Studio tasks carry curate's suggested classes from the label issues. `ids`
    (e.g. the app's basket) instead of a selection."""
    if fmt not in EXPORT_FORMATS or fmt == "folder":
        raise ValueError(f"--format must be one of {', '.join(EXPORT_FORMATS[1:])}, not {fmt!r}")
    if ids is None:
        ids = ws.selection(selection).sort_values("rank")["id"].to_numpy()
    _check_target(ws, Path(target).expanduser().resolve())
    if fmt == "crops":
        return export_crops(ws, ids, Path(target), progress)
    return export_annotations(ws, ids, Path(target), fmt, progress, suggested_classes(ws) if fmt == "labelstudio"
                              else None)


def suggested_classes(ws: Workspace) -> dict[str, str]:
    """{annotation key: suggested class} of the objects flagged as label issues."""
    if not ws.label_issues_file.exists():
        return {}
    issues = pd.read_parquet(ws.label_issues_file)
    issues = issues[issues["label_issue"].astype(bool) & issues["suggested"].notna()]
    manifest = ws.manifest()
    if "annotation" not in manifest.columns:
        return {}
    keys = manifest["annotation"].iloc[issues["id"].to_numpy()]
    return {str(k): str(v) for k, v in zip(keys, issues["suggested"]) if isinstance(k, str)}


def _check_target(ws: Workspace, folder: Path) -> None:
    for inside, what in ((ws.root, "the image folder"), (ws.path, "the workspace")):
        if folder.is_relative_to(inside):
            raise ValueError(f"refusing to export into {folder}: it lies inside {what} ({inside}). "
                             "Choose a folder outside the image folder and the workspace.")


def export_selection(ws: Workspace, selection: str, target: str | Path, mode: str = "copy",
                     progress: Progress | None = None) -> Path:
    """Export a saved selection into `target`; returns the manifest CSV. A selection of video frames
    writes one image file per frame, named by video and time (curate.export.items.export_frames)."""
    ids = ws.selection(selection)["id"].to_numpy()
    if len(ids) and (kinds(ws.manifest())[ids] == "frame").all() and mode in ("copy", "hardlink", "symlink"):
        _check_target(ws, Path(target).expanduser().resolve())
        return export_frames(ws, ws.selection(selection).sort_values("rank")["id"], Path(target), progress) \
            / "manifest.csv"
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


@dataclass
class ExportPlan:
    """What an export would write, worked out before anything is written (for a confirmation step)."""

    target: Path  # resolved folder (or the zip's name for a zip)
    mode: str  # copy | symlink | hardlink | list | zip
    n: int  # images exported (readable ones only)
    image_bytes: int  # total size of those images on disk
    files: list[str]  # relative paths written under target, images first (first `preview` of them)
    manifests: list[str]  # the manifest files written next to them
    existing: int  # entries already in target (left alone unless they have the same path)


def plan_export(ws: Workspace, target: str | Path, mode: str, selection: str | None = None, ids=None,
                preview: int = 10) -> ExportPlan:
    """The export of a selection (or of `ids`) into `target` with `mode`, without writing anything.

    Raises ValueError for a target inside the image folder or the workspace (a later scan would
    take exported files for new images; the workspace is curate's own), or an unknown mode.
    """
    if mode not in (*EXPORT_MODES, "zip"):
        raise ValueError(f"export mode must be one of {', '.join(EXPORT_MODES)} or zip, not {mode!r}")
    rows = selection_rows(ws, selection) if selection else export_rows(ws, ids if ids is not None else [])
    sizes = ws.manifest()["bytes"].iloc[rows["id"].to_numpy()].to_numpy(np.float64, na_value=0)
    if mode == "zip":
        return ExportPlan(Path(target), mode, len(rows), int(sizes.sum()), [zip_member(p) for p in rows["path"][:preview]],
                          ["manifest.csv", "manifest.json"], 0)
    folder = Path(target).expanduser().resolve()
    for inside, what in ((ws.root, "the image folder"), (ws.path, "the workspace")):
        if folder.is_relative_to(inside):
            raise ValueError(f"refusing to export into {folder}: it lies inside {what} ({inside}). "
                             "Choose a folder outside the image folder and the workspace.")
    files = [] if mode == "list" else [inside_target(folder, p).relative_to(folder).as_posix()
                                       for p in rows["path"][:preview]]
    existing = sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0
    return ExportPlan(folder, mode, len(rows), int(sizes.sum()), files,
                      ["manifest.csv", "manifest.parquet", "manifest.json"], existing)
