"""Export files into a target folder, keeping their relative layout (class sub-folders)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from curate import storage
from curate.progress import Progress, report
from curate.workspace import resolve_inside

EXPORT_MODES = ("copy", "symlink", "list")


def export_files(root: Path, rows: pd.DataFrame, target: Path, mode: str = "copy",
                 progress: Progress | None = None) -> Path:
    """Write rows' images (columns id, path, label, ...) under `target` and `target/manifest.csv`.

    Never writes outside `target` and never reads outside `root`. Existing identical files are left
    as they are, so re-exporting is idempotent. Returns the manifest CSV path.
    """
    if mode not in EXPORT_MODES:
        raise ValueError(f"export mode must be one of {', '.join(EXPORT_MODES)}, not {mode!r}")
    target = Path(target).expanduser().resolve()
    target.mkdir(parents=True, exist_ok=True)
    out_paths = []
    for n, rel in enumerate(rows["path"]):
        src = resolve_inside(root, rel)
        dst = resolve_inside(target, rel)
        out_paths.append(dst.relative_to(target).as_posix())
        if mode != "list":
            _place(src, dst, mode)
        report(progress, n + 1, len(rows), stage=f"export ({mode})", unit="file")
    table = rows.assign(source=[str(resolve_inside(root, p)) for p in rows["path"]],
                        exported=out_paths if mode != "list" else None)
    csv = target / "manifest.csv"
    with storage.atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    return csv


def _place(src: Path, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        if dst.is_symlink() and dst.resolve() == src:
            return
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(src, tmp)
        os.replace(tmp, dst)
    else:
        if dst.exists() and not dst.is_symlink() and dst.stat().st_size == src.stat().st_size:
            return
        with storage.atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
