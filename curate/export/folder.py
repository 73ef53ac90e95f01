"""Export files into a target folder, keeping their relative layout (class sub-folders), or into a zip.

The layout, `CLASS/file.jpg` under the target, is what torchvision's `ImageFolder` and FiftyOne's
image-classification directory tree both read. Next to the images go `manifest.csv`,
`manifest.parquet` and `manifest.json` (the rows plus their provenance: workspace, selection,
strategy, parameters).
"""
from __future__ import annotations

import logging
import os
import json
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

import pandas as pd

from curate import storage
from curate.progress import Progress, report
from curate.workspace import resolve_inside

log = logging.getLogger(__name__)

EXPORT_MODES = ("copy", "symlink", "hardlink", "list")


def export_files(root: Path, rows: pd.DataFrame, target: Path, mode: str = "copy",
                 progress: Progress | None = None, provenance: dict | None = None) -> Path:
    """Write rows' images (columns id, path, label, ...) under `target`, plus the manifest files.

    Never writes outside `target` and never reads outside `root`: every path is checked before
    anything is written, and one that escapes (`..`, absolute, a symlink leading out) raises
    PermissionError. Existing identical files are left as they are, so re-exporting is
    idempotent. A hard link needs `target` on the same file system as `root` (else OSError says
    so). Returns the manifest CSV path.
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
    csv = write_manifests(target, table, {**(provenance or {}), "mode": mode})
    log.info("exported %d files to %s (%s)", len(rows), target, mode)
    return csv


def write_manifests(target: Path, table: pd.DataFrame, provenance: dict) -> Path:
    """manifest.csv, manifest.parquet and manifest.json (provenance + rows) in `target`; returns the CSV."""
    csv = target / "manifest.csv"
    with storage.atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    storage.write_parquet(target / "manifest.parquet", table)
    storage.write_json(target / "manifest.json", manifest_document(table, provenance))
    return csv


def manifest_document(table: pd.DataFrame, provenance: dict) -> dict:
    return {"provenance": provenance, "n": int(len(table)),
            "images": json.loads(table.to_json(orient="records", force_ascii=False))}


def export_zip(root: Path, rows: pd.DataFrame, destination, provenance: dict | None = None,
               progress: Progress | None = None) -> None:
    """A zip (to a path or a binary file object) holding rows' images under their relative paths
    plus manifest.csv and manifest.json. Images are stored, not deflated: JPEG/PNG do not shrink."""
    root = Path(root).expanduser().resolve()
    sources = [resolve_inside(root, rel) for rel in rows["path"]]
    names = [zip_member(rel) for rel in rows["path"]]
    table = rows.assign(exported=names)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED) as zf:
        for n, (src, name) in enumerate(zip(sources, names)):
            zf.write(src, name)
            report(progress, n + 1, len(rows), stage="export (zip)", unit="file")
        zf.writestr("manifest.csv", table.to_csv(index=False))
        zf.writestr("manifest.json", json.dumps(manifest_document(table, {**(provenance or {}), "mode": "zip"}),
                                                indent=1, ensure_ascii=False))


def zip_member(rel: str) -> str:
    """A manifest path as a zip member name, refusing any that would unpack outside the folder."""
    rel_path = PurePosixPath(str(rel))
    if rel_path.is_absolute() or not rel_path.parts or ".." in rel_path.parts:
        raise PermissionError(f"refusing to zip {rel!r}: not a relative path")
    return rel_path.as_posix()


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
    if mode == "hardlink":
        if dst.exists() and os.path.samefile(src, dst) and not dst.is_symlink():
            return
        tmp = dst.with_name(f".{dst.name}.link.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError as err:
            raise OSError(f"cannot hard-link {src} into {dst.parent} ({err.strerror}): hard links need the "
                          "export folder on the same file system as the images; use copy or symlink") from err
        os.replace(tmp, dst)
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
