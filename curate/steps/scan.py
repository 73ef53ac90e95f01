"""`curate scan`: build or refresh the manifest."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dataclasses

import numpy as np
import pandas as pd

from curate import storage
from curate.clock import now
from curate.data.annotations import read_annotations
from curate.data.frames import FrameSampling, sample_videos
from curate.data.items import kinds, with_item_columns
from curate.data.metadata import join_metadata, read_metadata
from curate.data.objects import merge_objects
from curate.data.remote import is_url, parse_storage_options, sync
from curate.data.scan import ItemCounts, ScanSummary, max_file_bytes, scan_folder
from curate.data.video import is_video_path
from curate.engines import DEFAULT_ENGINE, Engine, create_engine
from curate.locks import locked
from curate.progress import Progress
from curate.steps.options import RunOptions
from curate.workspace import Workspace


def scan(images: str | Path, ws_path: str | Path, progress: Progress | None = None,
         engine: Engine | None = None, annotations: str | Path | None = None,
         sampling: FrameSampling | None = None, metadata: str | Path | None = None,
         storage_options: dict | None = None) -> tuple[Workspace, ScanSummary]:
    """Scan `images` into the workspace at `ws_path` (created if new). The engine (default local) reads,
    hashes and verifies the new and changed files; this scan decides which files those are and writes
    the manifest. Then the videos' frames (`sampling`) and the boxes of `annotations` (default: the
    annotations a previous scan read) become items, their ids kept from the last scan, and the columns of
    `metadata` (default: the file a previous scan joined) are joined on by path. `images` may be a bucket URL
    (s3://, gs://, az://): it is mirrored into the workspace first (curate.data.remote), and a later scan of the
    workspace's own folder mirrors it again."""
    engine = engine or create_engine(DEFAULT_ENGINE)
    source = remote_source(images, ws_path)
    synced = None
    if source is not None:
        images, synced = _mirror(source, Path(ws_path), storage_options, progress)
    ws = Workspace.create(ws_path, images)
    with locked(ws.locks_dir, "manifest", what="a scan or quality check"):  # read-modify-write of the manifest
        previous = ws.manifest() if ws.manifest_file.exists() else None
        files, derived = _split(previous)
        first_new = int(previous["id"].max()) + 1 if previous is not None and len(previous) else 0
        manifest, summary = scan_folder(ws.root, files, progress=progress, inspect_files=engine.inspect_files,
                                        first_new_id=first_new)
        if summary.ok == 0:
            raise ValueError(f"no readable images or videos under {ws.root} ({summary.line()}); curate reads jpg, "
                             "jpeg, png, webp, bmp, tif, tiff, gif, and mp4, mkv, mov, avi, webm videos")
        manifest = _with_kinds(manifest, derived)
        manifest, items = _derive(ws, manifest, annotations, sampling or FrameSampling(), progress)
        manifest = _join_metadata(ws, manifest, metadata)
        ws.save_manifest(manifest)
    return ws, dataclasses.replace(summary, items=items, remote=synced.line() if synced else None)


def remote_source(images, ws_path) -> str | None:
    """The bucket URL to mirror: `images` when it is one, or the workspace's recorded source when `images` is
    the workspace's own mirror (a rescan from `curate run -w WS` or the app); None for a local folder."""
    if is_url(images):
        return str(images).rstrip("/")  # s3://b/p/ and s3://b/p are one source
    ws = Workspace(Path(ws_path))
    if images is not None and ws.exists() and ws.meta.get("source") and Path(images).resolve() == ws.mirror_dir.resolve():
        return ws.meta["source"]
    return None


def _mirror(source: str, ws_path: Path, options: dict | None, progress: Progress | None):
    """Mirror the bucket into the workspace; (the mirror folder, what was synced)."""
    ws = Workspace(ws_path)
    if ws.exists() and ws.meta.get("source") not in (None, source):
        raise ValueError(f"workspace {ws.path} mirrors {ws.meta['source']}, not {source}: use another -w folder")
    ws.mirror_dir.mkdir(parents=True, exist_ok=True)
    ws = Workspace.create(ws_path, ws.mirror_dir)
    if ws.meta.get("source") != source:
        storage.write_json(ws.meta_file, {**ws.meta, "source": source})  # the URL only: never credentials
    synced = sync(source, ws.mirror_dir, ws.mirror_file, options, max_file_bytes(), progress)
    return ws.mirror_dir, synced


def _split(previous: pd.DataFrame | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(file rows: images and videos, derived rows: frames and objects) of the last manifest."""
    if previous is None or "kind" not in previous.columns:
        return previous, None
    derived = previous["kind"].isin(["frame", "object"]).fillna(False).to_numpy()
    return previous[~derived], previous[derived]


def _with_kinds(files: pd.DataFrame, derived: pd.DataFrame | None) -> pd.DataFrame:
    """The scanned files (videos marked as such) and the derived rows of the last scan, by id."""
    files = with_item_columns(files)
    files["kind"] = np.where([is_video_path(p) for p in files["path"].astype(str)], "video", "image")
    if derived is None or not len(derived):
        return files
    both = pd.concat([files, with_item_columns(derived).reindex(columns=files.columns)], ignore_index=True)
    both = both.sort_values("id", ignore_index=True)
    return with_item_columns(both.astype({c: files[c].dtype for c in ("id", "width", "height", "bytes")}))


def _derive(ws: Workspace, manifest: pd.DataFrame, annotations, sampling: FrameSampling,
            progress: Progress | None) -> tuple[pd.DataFrame, ItemCounts]:
    """Frames of the videos, objects of the annotations; records what was read for the next scan."""
    frames = objects = None
    problems: list[tuple[str, str]] = []
    if (kinds(manifest) == "video").any() or ws.frames_file.exists():
        record = storage.read_json(ws.frames_file) if ws.frames_file.exists() else {}
        manifest, frames, record = sample_videos(manifest, ws.root, ws.frame_store_dir, sampling, record, progress)
        storage.write_json(ws.frames_file, record)
    source = annotations or (storage.read_json(ws.annotations_file).get("path") if ws.annotations_file.exists()
                             else None)
    if source is not None:
        found = manifest[(kinds(manifest) == "image") & (manifest["status"] == "ok").to_numpy()]
        sizes = dict(zip(found["path"].astype(str), zip(found["width"].astype(int), found["height"].astype(int))))
        annotation_set = read_annotations(Path(source), ws.root, sizes)
        manifest, objects, orphans = merge_objects(manifest, annotation_set.boxes)
        problems = list(zip(orphans["annotation"], orphans["problem"]))
        bad = annotation_set.boxes["problem"].notna()
        storage.write_json(ws.annotations_file, {
            "path": str(Path(source).resolve()), "format": annotation_set.format, "classes": annotation_set.classes,
            "images": annotation_set.images, "files": annotation_set.files, "boxes": int(len(annotation_set.boxes)),
            "problems": [{"annotation": str(a), "image": i, "problem": str(p)} for a, i, p in zip(
                annotation_set.boxes["annotation"][bad], annotation_set.boxes["image"][bad],
                annotation_set.boxes["problem"][bad])], "created": now()})
    return manifest, ItemCounts(frames, objects, tuple(problems))


def _join_metadata(ws: Workspace, manifest: pd.DataFrame, metadata) -> pd.DataFrame:
    """The manifest with the metadata file's columns (curate.data.metadata); records what was joined."""
    record = storage.read_json(ws.metadata_file) if ws.metadata_file.exists() else {}
    source = metadata or record.get("file")
    if source is None:
        return manifest
    joined, info = join_metadata(manifest, read_metadata(Path(source)), ws.root, Path(source),
                                 record.get("columns", []))
    storage.write_json(ws.metadata_file, {**info, "created": now()})
    return joined


@dataclass(frozen=True)
class ScanStepSummary:
    root: Path
    counts: ScanSummary
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of the first SHOW_SKIPPED unusable files
    metadata: dict | None = None  # what the metadata join recorded (curate.data.metadata)
    remote_problems: tuple[tuple[str, str], ...] = ()  # (object key, reason) of bucket objects not read

    def lines(self) -> list[str]:
        out = [f"scanned {self.root}: {self.counts.line()}"]
        out += [f"  {line}" for line in self.counts.items.lines()]
        out += [f"  skipped {key}: {reason}" for key, reason in self.remote_problems]
        if self.metadata:
            m = self.metadata
            missed = m["rows"] - m["matched"]
            out.append(f"  metadata: {len(m['columns'])} columns ({', '.join(m['columns'][:6])}) from {m['file']} on "
                       f"{m['matched']:,} of its {m['rows']:,} paths" + (f"; {missed:,} match no file, e.g. "
                                                                         f"{m['unmatched_examples'][0]!r}" if missed else ""))
        out += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        if self.counts.skipped > len(self.skipped):
            out.append(f"  ... and {self.counts.skipped - len(self.skipped)} more (see manifest.parquet, column status)")
        return out


SHOW_SKIPPED = 20


def run(ws: Workspace, options: RunOptions, progress: Progress | None = None) -> ScanStepSummary:
    """The scan step: `options.images` into the workspace (its own image folder when not given)."""
    images = options.images if options.images is not None else ws.root
    sampling = FrameSampling(options.fps, options.max_frames, options.frame_change)
    ws, counts = scan(images, ws.path, progress=progress, engine=create_engine(options.engine, options.engine_options),
                      annotations=options.annotations, sampling=sampling, metadata=options.metadata,
                      storage_options=parse_storage_options(options.storage_options))
    bad = ws.manifest()
    bad = bad[~bad["status"].isin(["ok", "removed"])].head(SHOW_SKIPPED)
    metadata = storage.read_json(ws.metadata_file) if ws.metadata_file.exists() else None
    remote = storage.read_json(ws.mirror_file).get("problems", []) if ws.mirror_file.exists() else []
    return ScanStepSummary(ws.root, counts, tuple(zip(bad["path"], bad["status"])), metadata,
                           tuple((p["key"], p["problem"]) for p in remote[:SHOW_SKIPPED]))
