"""Scan a folder into the manifest: new, changed and removed files, ids assigned once and never reused.

Every listed file gets a row, readable or not: a bad file is a row whose `status` says why
(`empty file`, `not an image: ...`, `corrupt: ...`, `unreadable: ...`, `missing: ...`,
`outside the image folder: ...`, `bad file name: ...`, `not a regular file: ...`, `too large: ...`), so a scan never fails on file content.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISLNK, S_ISREG, S_ISSOCK
from typing import Callable, Iterable, Iterator, NamedTuple

import pandas as pd
from PIL import Image

from curate.data.exif import EXIF_COLUMNS, read_exif
from curate.data.images import ImageError, image_size, is_image_path, load_rgb
from curate.data.video import is_video_path
from curate.data.manifest import MANIFEST_COLUMNS, empty_manifest
from curate.progress import Progress, report

log = logging.getLogger(__name__)

MAX_FILE_MB_ENV = "CURATE_MAX_FILE_MB"  # `curate ... --max-file-mb`
MAX_FILE_BYTES = 1 << 30  # by default: a file is read whole to hash and verify it, no image needs more
VERIFY_SIDE = 256  # decode at most this size to prove a file is readable (JPEG draft keeps it cheap)


@dataclass(frozen=True)
class ItemCounts:
    """What a scan derived from the files: frames of videos, objects of annotations (curate.steps.scan)."""
    frames: dict | None = None  # added, changed, removed, total, videos (sampled now)
    objects: dict | None = None  # added, changed, removed, total
    problems: tuple[tuple[str, str], ...] = ()  # (annotation, reason) of annotations without an image

    def lines(self) -> list[str]:
        out = []
        for name, c in (("frames", self.frames), ("objects", self.objects)):
            if c is not None:
                out.append(f"{c['total']} {name}: {c['added']} new, {c['changed']} changed, {c['removed']} removed"
                           + (f" ({c['videos']} videos sampled)" if "videos" in c else ""))
        if self.problems:
            out.append(f"{len(self.problems)} annotations without an image, e.g. {self.problems[0][0]}: "
                       f"{self.problems[0][1]}")
        return out


@dataclass(frozen=True)
class ScanSummary:
    total: int    # image files listed now
    ok: int       # rows with status ok
    added: int    # new ids
    changed: int  # known ids whose content or status changed (a file that reappeared included)
    removed: int  # ids whose file vanished in this scan
    skipped: int  # rows present but unusable (status is a reason)
    items: ItemCounts = ItemCounts()
    remote: str | None = None  # what mirroring a bucket did (curate.data.remote.SyncSummary.line)

    def line(self) -> str:
        return ((f"{self.remote}; " if self.remote else "") + f"{self.total} files: {self.ok} ok, {self.skipped} "
                f"skipped, {self.added} new, {self.changed} changed, {self.removed} removed")


class _Listed(NamedTuple):
    """One listed file: where it is, its manifest path, and what `stat` said (or why it is unusable).
    Plain strings and a tuple: a rescan of millions of files is spent per file, not per image read."""
    path: str
    rel: str
    size: int
    mtime: int
    problem: str | None


def list_images(root: Path) -> list[Path]:
    """Image files under root (recursive, sorted, hidden files and folders ignored, folder links not followed)."""
    return [Path(full) for full, _ in _walk(root)]


def _walk(root: Path) -> Iterator[tuple[str, str]]:
    """(full path, manifest path) of every image file under root, in `list_images` order: a folder's
    files by name, then its sub-folders by name. Strings from `os.scandir`, no Path per file."""
    def entries(folder: str) -> list[os.DirEntry]:
        try:
            with os.scandir(folder) as it:
                return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError as err:
            log.warning("cannot list %s: %s (its images are left out)", err.filename, err.strerror or err)
            return []

    stack = [(os.fspath(root), "")]
    while stack:
        folder, prefix = stack.pop()
        subfolders = []
        for entry in entries(folder):
            try:
                is_dir = entry.is_dir()  # a link to a folder counts as one (and is not followed), as in os.walk
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    subfolders.append((entry.path, f"{prefix}{entry.name}/"))
            elif is_image_path(entry.name) or is_video_path(entry.name):
                yield entry.path, prefix + entry.name
        stack.extend(reversed(subfolders))


def label_of(rel: Path) -> str | None:
    """The immediate class sub-folder of a file, or None for a file at the root."""
    return rel.parent.name if rel.parent != Path(".") else None


def inspect_file(path: Path) -> dict:
    """bytes, sha1, width, height and status of one file; never raises."""
    if is_video_path(path):
        return inspect_video(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return _unusable(f"unreadable: {err.strerror or err}")
    except MemoryError:
        return _unusable("too large: out of memory while reading")
    row = {"bytes": len(data), "sha1": hashlib.sha1(data).hexdigest(), "width": 0, "height": 0}
    if not data:
        return {**row, "status": "empty file"}
    try:  # the same bytes are hashed and decoded, so sha1 and status always describe one version
        load_rgb(io.BytesIO(data), max_side=VERIFY_SIDE)
        row["width"], row["height"] = image_size(io.BytesIO(data))
        row["status"] = "ok"
        with Image.open(io.BytesIO(data)) as img:  # the header again: capture time, camera, GPS... as columns
            row.update(read_exif(img))
    except ImageError as err:
        row["status"] = str(err)
    except Exception as err:  # load_rgb vouches for the decode; this guards the header re-read
        log.debug("unexpected failure inspecting %s", path, exc_info=err)
        row["status"] = f"corrupt: {type(err).__name__}: {err}"[:200]
    return row


def inspect_video(path: Path) -> dict:
    """bytes, sha1 (streamed: videos may be large), width, height and status of a video; never raises.
    Only the container is read to check it (milliseconds); its frames are sampled by curate.data.frames."""
    from curate.data.video import VideoError, probe

    h, size = hashlib.sha1(), 0
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                size += len(block)
    except OSError as err:
        return _unusable(f"unreadable: {err.strerror or err}")
    row = {"bytes": size, "sha1": h.hexdigest(), "width": 0, "height": 0}
    if not size:
        return {**row, "status": "empty file"}
    try:
        info = probe(path)
    except VideoError as err:
        return {**row, "status": str(err)}
    except Exception as err:  # PyAV raises its own errors for hostile files; the reason is kept
        return {**row, "status": f"corrupt: {type(err).__name__}: {err}"[:200]}
    return {**row, "width": int(info.width), "height": int(info.height), "status": "ok"}


def scan_folder(root: str | Path, previous: pd.DataFrame | None = None, workers: int = 4,
                progress: Progress | None = None, inspect_files: Callable[[list[Path]], Iterable[dict]] | None = None,
                first_new_id: int = 0) -> tuple[pd.DataFrame, ScanSummary]:
    """Build or refresh a manifest for `root`.

    Unchanged files (same size and mtime) are not re-read. Ids of known paths are kept (a path
    that comes back gets its old id); new paths get fresh ids after the largest ever used, in
    path order; vanished paths keep their row with status `removed`. Row i of the result is id i.
    Columns other steps added to `previous` (quality metrics and flags) are kept for unchanged and
    removed rows and left missing (NaN / NA) for new and changed ones, which must be measured again.
    `inspect_files` maps `inspect_file` over the files to read, in order (default: `inspect_threaded` with
    `workers` threads; an engine passes its own, curate.engines). New ids start at `first_new_id` or later
    (the scan step passes the first id after its objects and frames, which are not files: curate.steps.scan).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root} (pass a folder of images)")
    previous = empty_manifest() if previous is None else previous
    cap = max_file_bytes()
    listed = [entry for entry in (_stat_entry(full, rel, root, cap) for full, rel in _walk(root)) if entry is not None]
    kept, fresh, todo, old_rows = _plan(listed, previous, first_new_id)

    paths = [Path(entry.path) for _, entry in todo]
    infos = inspect_files(paths) if inspect_files is not None else inspect_threaded(paths, workers)
    for n, ((image_id, entry), info) in enumerate(zip(todo, infos, strict=True)):
        fresh.append(_row(image_id, entry, info))
        report(progress, n + 1, len(todo), stage="scan", unit="file")
    for row in fresh:  # report each problem once, when it first appears
        old = old_rows.get(row["id"])
        if row["status"] != "ok" and (old is None or not _same(old["status"], row["status"])):
            log.warning("skipped %s: %s", row["path"], row["status"])

    removed_rows = _removed(previous, {entry.rel for entry in listed})
    manifest = _frame(previous.iloc[kept], fresh + removed_rows, previous)
    summary = ScanSummary(
        total=len(listed),
        ok=int((manifest["status"] == "ok").sum()),
        added=len(fresh) - len(old_rows),
        changed=sum(_content_changed(old_rows[r["id"]], r) for r in fresh if r["id"] in old_rows),
        removed=sum(r["newly_removed"] for r in removed_rows),
        skipped=int((~manifest["status"].isin(["ok", "removed"])).sum()),
    )
    return manifest, summary


def inspect_threaded(paths: list[Path], workers: int = 4) -> Iterator[dict]:
    """`inspect_file` of each path, in order, by `workers` threads."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # Pillow and hashlib release the GIL
        yield from pool.map(inspect_file, paths)


def _plan(listed: list[_Listed], previous: pd.DataFrame, first_new_id: int = 0) -> tuple[list, list, list, dict]:
    """Sort listed files into rows kept as they are, rows already final (unusable without reading),
    and (id, entry) pairs to read; ids are kept for known paths and assigned after the max for new ones.

    Returns (positions in `previous` of the rows kept as they are, final rows, to read, {id: previous row}
    for every known path listed that is not kept). Unchanged rows never become dicts: a rescan of
    millions of unchanged files costs the stat calls and a few array lookups per file.
    """
    position = dict(zip(previous["path"].tolist(), range(len(previous))))
    ids, sizes, mtimes = (previous[c].tolist() for c in ("id", "bytes", "mtime"))  # Python ints: fast to compare
    removed = (previous["status"] == "removed").tolist()
    next_id = max(max(ids) + 1 if ids else 0, first_new_id)
    kept, fresh, todo, old_rows = [], [], [], {}
    for entry in listed:
        pos = position.get(entry.rel)
        if pos is None:
            image_id, next_id = next_id, next_id + 1
        elif entry.problem is None and not removed[pos] and sizes[pos] == entry.size and mtimes[pos] == entry.mtime:
            kept.append(pos)  # unchanged
            continue
        else:
            image_id = int(ids[pos])
            old_rows[image_id] = previous.iloc[pos].to_dict()
        if entry.problem is not None:
            fresh.append(_row(image_id, entry, _unusable(entry.problem)))
        else:
            todo.append((image_id, entry))
    return kept, fresh, todo, old_rows


def _stat_entry(full: str, rel: str, root: Path, cap: int) -> _Listed | None:
    """Describe one listed file (`full` path, `rel` manifest path) without reading it; None if it
    vanished since it was listed. One lstat per plain file (a second stat only for links): a rescan of
    millions of files is its stat calls. `cap`: the largest file the scan reads (`max_file_bytes`)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # the manifest stores UTF-8: keep a readable, stable stand-in name
        shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return _Listed(full, shown, 0, _lstat_mtime(full), "bad file name: not valid UTF-8 (rename the file)")
    try:
        stat = os.lstat(full)
        if S_ISLNK(stat.st_mode):
            problem = _link_problem(Path(full), root)
            if problem is not None:
                return _Listed(full, rel, 0, stat.st_mtime_ns, problem)
            stat = os.stat(full)
    except FileNotFoundError:
        return None
    except OSError as err:
        return _Listed(full, rel, 0, 0, f"unreadable: {err.strerror or err}")
    if not S_ISREG(stat.st_mode):  # a pipe named x.jpg would block `open` forever, a device never end
        return _Listed(full, rel, 0, stat.st_mtime_ns, f"not a regular file: {_file_kind(stat.st_mode)}")
    if stat.st_size > cap and not is_video_path(rel):  # a video is streamed, never read whole
        return _Listed(full, rel, stat.st_size, stat.st_mtime_ns,
                       f"too large: {stat.st_size / 2**20:,.1f} MB (at most {cap / 2**20:,.0f} MB per file: "
                       f"--max-file-mb / ${MAX_FILE_MB_ENV})")
    return _Listed(full, rel, stat.st_size, stat.st_mtime_ns, None)


def max_file_bytes() -> int:
    """The largest file the scan reads ($CURATE_MAX_FILE_MB, default 1 GiB)."""
    from curate.data.images import env_int

    return env_int(MAX_FILE_MB_ENV, MAX_FILE_BYTES >> 20) << 20


def _file_kind(mode: int) -> str:
    for test, name in ((S_ISFIFO, "named pipe"), (S_ISCHR, "character device"), (S_ISBLK, "block device"),
                       (S_ISSOCK, "socket"), (S_ISDIR, "folder")):
        if test(mode):
            return name
    return "special file"


def _link_problem(path: Path, root: Path) -> str | None:
    """Why a symbolic link cannot be used, or None: its target must exist inside the image folder,
    because every reader (cache, export, search) refuses paths that resolve outside it."""
    try:
        target = path.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):  # RuntimeError: a link loop
        return f"missing: broken symbolic link to {os.readlink(path)}"
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if not target.is_relative_to(root.resolve()):
        return f"outside the image folder: symbolic link to {target}"
    return None


def _lstat_mtime(path: str) -> int:
    try:
        return os.lstat(path).st_mtime_ns
    except OSError:
        return 0


def _unchanged(old: dict, entry: _Listed) -> bool:
    return old["status"] != "removed" and old["bytes"] == entry.size and old["mtime"] == entry.mtime


def _unusable(status: str) -> dict:
    return {"bytes": 0, "sha1": None, "width": 0, "height": 0, "status": status}


def _row(image_id: int, entry: _Listed, info: dict) -> dict:
    return {"id": image_id, "path": entry.rel, "label": label_of(Path(entry.rel)), "mtime": entry.mtime, **info}


def _content_changed(old: dict, row: dict) -> bool:
    return not (_same(old["sha1"], row["sha1"]) and _same(old["status"], row["status"]))


def _same(a, b) -> bool:
    """Equality where two missing values (None, NA) are the same."""
    return (pd.isna(a) and pd.isna(b)) or (not pd.isna(a) and not pd.isna(b) and a == b)


def _removed(previous: pd.DataFrame, present: set[str]) -> list[dict]:
    """Rows of previously known paths that are gone, marked `removed` (flag: newly so in this scan)."""
    gone = previous[~previous["path"].isin(present)]
    return [{**row, "status": "removed", "newly_removed": row["status"] != "removed"}
            for row in gone.to_dict("records")]


def _frame(kept: pd.DataFrame, rows: list[dict], previous: pd.DataFrame) -> pd.DataFrame:
    """The manifest: `kept` (previous rows as they are) and `rows` (new, changed, removed), by id. EXIF columns
    appear once some image has that field (curate.data.exif), and stay."""
    extra = [c for c in previous.columns if c not in MANIFEST_COLUMNS]
    found = set().union(*(r.keys() for r in rows)) if rows else set()
    extra += [c for c in EXIF_COLUMNS if c in found and c not in extra]
    if not rows and not len(kept):
        return empty_manifest()
    new = pd.DataFrame(rows, columns=MANIFEST_COLUMNS + extra)
    kept = kept.reindex(columns=MANIFEST_COLUMNS + extra)  # a column new with this scan: missing for kept rows
    manifest = pd.concat([kept.astype(object), new], ignore_index=True) if len(new) else kept
    manifest = manifest.sort_values("id").reset_index(drop=True).astype(empty_manifest().dtypes.to_dict())
    for col in extra:  # back to the previous dtype, made nullable where new rows leave holes
        manifest[col] = _restore(manifest[col], previous[col].dtype if col in previous else EXIF_COLUMNS[col])
    return manifest


def _restore(values: pd.Series, dtype) -> pd.Series:
    """`values` (object or float after the round trip through dicts) as `dtype`, or a nullable kin of it."""
    if pd.api.types.is_bool_dtype(dtype):
        dtype = "boolean"
    elif pd.api.types.is_integer_dtype(dtype):
        dtype = "Int64"
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):  # a column another tool wrote with values we cannot coerce: leave as is
        return values
