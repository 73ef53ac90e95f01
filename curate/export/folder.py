"""Export files into a target folder, keeping their relative layout (class sub-folders)."""
from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path, PurePosixPath

import pandas as pd

from curate import storage
from curate.progress import Progress, report
from curate.workspace import resolve_inside

log = logging.getLogger(__name__)

EXPORT_MODES = ("copy", "symlink", "list")


def export_files(root: Path, rows: pd.DataFrame, target: Path, mode: str = "copy",
                 progress: Progress | None = None) -> Path:
    """Write rows' images (columns id, path, label, ...) under `target` and `target/manifest.csv`.

    Never writes outside `target` and never reads outside `root`: every path is checked before
    anything is written, and one that escapes (`..`, absolute, a symlink leading out) raises
    PermissionError. Existing identical files are left as they are, so re-exporting is
    idempotent. Returns the manifest CSV path.
    """
    if mode not in EXPORT_MODES:
        raise ValueError(f"export mode must be one of {', '.join(EXPORT_MODES)}, not {mode!r}")
    root = Path(root).expanduser().resolve()
    target = Path(target).expanduser().resolve()
    if mode != "list" and target.is_relative_to(root):
        raise ValueError(f"export folder {target} is inside the image folder {root}: the next scan would "
                         "take the exported files for new images; export to a folder outside it")
    sources = [resolve_inside(root, rel) for rel in rows["path"]]
    destinations = [inside_target(target, rel) for rel in rows["path"]]
    target.mkdir(parents=True, exist_ok=True)
    for n, (src, dst) in enumerate(zip(sources, destinations)):
        if mode != "list":
            _place(src, dst, mode)
        report(progress, n + 1, len(rows), stage=f"export ({mode})", unit="file")
    exported = [dst.relative_to(target).as_posix() for dst in destinations] if mode != "list" else None
    table = rows.assign(source=[str(src) for src in sources], exported=exported)
    csv = target / "manifest.csv"
    with storage.atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    log.info("exported %d files to %s (%s)", len(rows), target, mode)
    return csv


def inside_target(target: Path, rel: str) -> Path:
    """`target/rel` for a manifest path, refusing any that would land outside `target` (resolved).

    The last component is not resolved: an existing symlink there is replaced, never written through.
    """
    rel_path = PurePosixPath(str(rel))  # manifest paths are POSIX, relative to the image root
    if rel_path.is_absolute() or not rel_path.parts or ".." in rel_path.parts:
        raise PermissionError(f"refusing to export {rel!r}: not a path inside the export folder")
    dst = target.joinpath(*rel_path.parts)
    parent = dst.parent.resolve()  # a sub-folder that is a symlink must not lead out of target
    if not parent.is_relative_to(target):
        raise PermissionError(f"refusing to export {rel!r}: {dst.parent} leads outside {target}")
    return parent / dst.name


def _place(src: Path, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        if dst.is_symlink() and os.readlink(dst) == str(src):
            return
        tmp = dst.with_name(f".{dst.name}.link.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(src, tmp)
        os.replace(tmp, dst)  # replaces a file or link at dst, never writes through it
        return
    src_stat = src.stat()
    if _same_copy(dst, src_stat):
        return
    with storage.atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
        os.utime(tmp, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))  # the mtime marks an up-to-date copy


def _same_copy(dst: Path, src_stat: os.stat_result) -> bool:
    """True if dst is a regular file (not a link) with the source's size and mtime: a copy made earlier."""
    try:
        st = dst.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == src_stat.st_size and st.st_mtime_ns == src_stat.st_mtime_ns
