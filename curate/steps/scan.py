"""`curate scan`: build or refresh the manifest."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curate.data.scan import ScanSummary, scan_folder
from curate.engines import DEFAULT_ENGINE, Engine, create_engine
from curate.locks import locked
from curate.progress import Progress
from curate.steps.options import RunOptions
from curate.workspace import Workspace


def scan(images: str | Path, ws_path: str | Path, progress: Progress | None = None,
         engine: Engine | None = None) -> tuple[Workspace, ScanSummary]:
    """Scan `images` into the workspace at `ws_path` (created if new). The engine (default local) reads,
    hashes and verifies the new and changed files; this scan decides which files those are and writes
    the manifest."""
    engine = engine or create_engine(DEFAULT_ENGINE)
    ws = Workspace.create(ws_path, images)
    with locked(ws.locks_dir, "manifest", what="a scan or quality check"):  # read-modify-write of the manifest
        previous = ws.manifest() if ws.manifest_file.exists() else None
        manifest, summary = scan_folder(ws.root, previous, progress=progress, inspect_files=engine.inspect_files)
        if summary.ok == 0:
            raise ValueError(f"no readable images under {ws.root} ({summary.line()}); "
                             "curate reads jpg, jpeg, png, webp, bmp, tif, tiff and gif")
        ws.save_manifest(manifest)
    return ws, summary


@dataclass(frozen=True)
class ScanStepSummary:
    root: Path
    counts: ScanSummary
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of the first SHOW_SKIPPED unusable files

    def lines(self) -> list[str]:
        out = [f"scanned {self.root}: {self.counts.line()}"]
        out += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        if self.counts.skipped > len(self.skipped):
            out.append(f"  ... and {self.counts.skipped - len(self.skipped)} more (see manifest.parquet, column status)")
        return out


SHOW_SKIPPED = 20


def run(ws: Workspace, options: RunOptions, progress: Progress | None = None) -> ScanStepSummary:
    """The scan step: `options.images` into the workspace (its own image folder when not given)."""
    images = options.images if options.images is not None else ws.root
    ws, counts = scan(images, ws.path, progress=progress, engine=create_engine(options.engine, options.engine_options))
    bad = ws.manifest()
    bad = bad[~bad["status"].isin(["ok", "removed"])].head(SHOW_SKIPPED)
    return ScanStepSummary(ws.root, counts, tuple(zip(bad["path"], bad["status"])))
