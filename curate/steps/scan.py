"""`curate scan`: build or refresh the manifest."""
from __future__ import annotations

from pathlib import Path

from curate.data.scan import ScanSummary, scan_folder
from curate.locks import locked
from curate.progress import Progress
from curate.workspace import Workspace


def scan(images: str | Path, ws_path: str | Path, progress: Progress | None = None) -> tuple[Workspace, ScanSummary]:
    ws = Workspace.create(ws_path, images)
    with locked(ws.locks_dir, "manifest", what="a scan or quality check"):  # read-modify-write of the manifest
        previous = ws.manifest() if ws.manifest_file.exists() else None
        manifest, summary = scan_folder(ws.root, previous, progress=progress)
        if summary.ok == 0:
            raise ValueError(f"no readable images under {ws.root} ({summary.line()}); "
                             "curate reads jpg, jpeg, png, webp, bmp, tif, tiff and gif")
        ws.save_manifest(manifest)
    return ws, summary
