"""Export of items with their annotations: a selection of images (with every box they hold) or of objects
(their parent images with only those boxes) as YOLO, COCO, Pascal VOC or Label Studio; object crops as a
class-folder image set; video frames as one image file each, named by video and time.

The writers (`curate.export.formats`) write the annotation files; this module decides which images and
boxes go out, copies the images where the writer says, and writes crops and frames through the one item
decode (`curate.data.sources`).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from curate import storage
from curate.data.items import BOX_COLUMNS, kinds
from curate.data.sources import box_crop, item_sources, parent_image
from curate.export.formats import WRITERS
from curate.progress import Progress, report
from curate.workspace import Workspace, resolve_inside

log = logging.getLogger(__name__)
ANNOTATION_FORMATS = tuple(WRITERS)
ITEM_FORMATS = ("crops", "frames")


def annotated_images(manifest: pd.DataFrame, ids) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(images: path, width, height; boxes: BOX_COLUMNS) for the selected `ids`: a selected image brings every
    usable box it holds, a selected object brings its parent image and itself."""
    ids = np.asarray(ids, dtype=np.int64)
    found = kinds(manifest)
    picked = found[ids]
    objects = manifest[(found == "object") & (manifest["status"] == "ok").to_numpy()]
    image_ids = set(ids[picked == "image"].tolist())
    chosen_objects = objects[objects["parent"].isin(image_ids) | objects["id"].isin(ids[picked == "object"])]
    image_ids |= set(chosen_objects["parent"].astype(int).tolist())
    order = list(dict.fromkeys([int(i) if k == "image" else int(manifest.at[int(i), "parent"])
                                for i, k in zip(ids, picked) if k in ("image", "object")]))
    images = manifest.iloc[[i for i in order if i in image_ids]]
    images = images[images["status"] == "ok"][["id", "path", "width", "height"]].reset_index(drop=True)
    boxes = pd.DataFrame({"image": chosen_objects["path"].astype(str).to_numpy(),
                          **{c: chosen_objects[c].to_numpy(np.float64) for c in ("x0", "y0", "x1", "y1")},
                          "label": chosen_objects["label"].astype(object).to_numpy(),
                          "annotation": chosen_objects["annotation"].astype(str).to_numpy(),
                          "iscrowd": False, "problem": None})[BOX_COLUMNS]
    return images, boxes


def export_annotations(ws: Workspace, ids, target: Path, fmt: str, progress: Progress | None = None,
                       suggested: dict | None = None) -> Path:
    """Write the selection as `fmt` (yolo, coco, voc, labelstudio) under `target`: annotation files, then the
    images copied where the writer placed them. Returns the target folder."""
    if fmt not in WRITERS:
        raise ValueError(f"--format must be one of {', '.join(WRITERS)}, crops or folder, not {fmt!r}")
    manifest = ws.manifest()
    images, boxes = annotated_images(manifest, ids)
    if not len(images):
        raise ValueError("the selection holds no readable image or object to export with annotations")
    classes = _classes(ws, boxes)
    kwargs = {"suggested": suggested} if fmt == "labelstudio" and suggested else {}
    written = WRITERS[fmt](images, boxes, classes, target, **kwargs)
    for n, (path, dest) in enumerate(written.images.items()):
        _copy(resolve_inside(ws.root, path), Path(target) / dest)
        report(progress, n + 1, len(written.images), stage=f"export {fmt}", unit="img")
    return Path(target)


def export_crops(ws: Workspace, ids, target: Path, progress: Progress | None = None) -> Path:
    """Objects of the selection as a class-folder image set: `LABEL/ID.png`, exactly the box (no context).
    Frames and images of the selection are written whole, under their label (or `unlabelled`)."""
    manifest = ws.manifest()
    sources = item_sources(ws.root, manifest, ws.frame_store_dir)
    ids = [int(i) for i in ids if manifest.at[int(i), "status"] == "ok" and kinds(manifest)[int(i)] != "video"]
    rows = []
    for n, i in enumerate(ids):
        src = sources[i]
        img = box_crop(parent_image(src), src.box) if src.kind == "object" else parent_image(src)
        label = manifest.at[i, "label"]
        folder = _safe(label if isinstance(label, str) and label else "unlabelled")
        rel = f"{folder}/{i}.png"
        with storage.atomic_path(Path(target) / rel) as tmp:
            img.save(tmp, format="PNG")
        rows.append({"id": i, "file": rel, "label": label, "kind": src.kind})
        report(progress, n + 1, len(ids), stage="export crops", unit="item")
    _manifest(target, rows)
    return Path(target)


def export_frames(ws: Workspace, ids, target: Path, progress: Progress | None = None) -> Path:
    """Frames of the selection as image files named by video and time: `VIDEO/VIDEO_t000012.345s.png`,
    decoded at full size at their exact time (curate.data.video.frame_at)."""
    manifest = ws.manifest()
    sources = item_sources(ws.root, manifest, ws.frame_store_dir)
    ids = [int(i) for i in ids if kinds(manifest)[int(i)] == "frame" and manifest.at[int(i), "status"] == "ok"]
    rows = []
    for n, i in enumerate(ids):
        src = sources[i]
        rel = frame_file_name(manifest.at[i, "path"], src.time_ms)
        with storage.atomic_path(Path(target) / rel) as tmp:
            parent_image(src).save(tmp, format="PNG")
        rows.append({"id": i, "file": rel, "video": manifest.at[i, "path"], "time_ms": src.time_ms})
        report(progress, n + 1, len(ids), stage="export frames", unit="frame")
    _manifest(target, rows)
    return Path(target)


def frame_file_name(video_path: str, time_ms: int) -> str:
    """`VIDEO/VIDEO_t000012.345s.png` for the frame at 12.345 s of VIDEO (a path relative to the image root)."""
    stem = _safe(PurePosixPath(str(video_path)).stem)
    folder = "/".join(_safe(p) for p in PurePosixPath(str(video_path)).parent.parts) or "."
    return f"{folder}/{stem}/{stem}_t{int(time_ms) / 1000:010.3f}s.png".removeprefix("./")


def _classes(ws: Workspace, boxes: pd.DataFrame) -> list[str]:
    """The annotation file's class list (so ids stay the same on the way out), plus any label not in it."""
    known = storage.read_json(ws.annotations_file).get("classes", []) if ws.annotations_file.exists() else []
    extra = sorted(set(boxes["label"].dropna().astype(str)) - set(known))
    return [*known, *extra]


def _copy(source: Path, dest: Path) -> None:
    if dest.exists() and dest.stat().st_size == source.stat().st_size:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)


def _manifest(target: Path, rows: list[dict]) -> None:
    storage.write_parquet(Path(target) / "manifest.parquet", pd.DataFrame(rows))
    storage.write_text(Path(target) / "manifest.csv", pd.DataFrame(rows).to_csv(index=False))


def _safe(name: str) -> str:
    """A file-name part without separators or a leading dot."""
    return "".join(c if c.isalnum() or c in "-_. " else "_" for c in str(name)).lstrip(".") or "_"
