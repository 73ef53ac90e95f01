"""YOLO detection export: `data.yaml`, `images/<split>/<path>`, `labels/<split>/<path>.txt`.

The layout is the one ultralytics reads: a label file is its image's path with the last `/images/`
replaced by `/labels/`. A folder of the manifest path named `images` would be that last one, so it is
written as `images_`. A line is `class cx cy w h` normalised to the image, with 10 significant digits
(well under 1e-6 px for images up to 10,000 px); an image without boxes gets an empty label file.
data.yaml has no `path` (ultralytics then takes the yaml's folder), and `val` falls back to the training
images when no image is in the val split (ultralytics requires a val entry).
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd
import yaml

from curate import storage
from curate.export.formats.boxes import (SPLITS, WrittenAnnotations, images_with_boxes, unique_targets,
                                         with_suffix)

DIGITS = 10


def image_target(path: str, split: str) -> str:
    """Where the image of manifest path `path` goes, relative to the export folder."""
    parts = PurePosixPath(path).parts
    folders = ["images_" if p == "images" else p for p in parts[:-1]]
    return str(PurePosixPath("images", split, *folders, parts[-1]))


def label_target(image: str) -> str:
    """The label file of an image target (ultralytics' rule: the last /images/ -> /labels/, suffix .txt)."""
    head, _, tail = f"/{image}".rpartition("/images/")
    return with_suffix(f"{head}/labels/{tail}"[1:], ".txt")


def yolo_lines(boxes: pd.DataFrame, width: int, height: int, classes: list[str]) -> str:
    """The label file text of one image's boxes."""
    ids = {name: k for k, name in enumerate(classes)}
    lines = []
    for label, x0, y0, x1, y1 in zip(boxes["label"], boxes["x0"], boxes["y0"], boxes["x1"], boxes["y1"]):
        values = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
        lines.append(" ".join([str(ids[label])] + [f"{v:.{DIGITS}g}" for v in values]))
    return "".join(line + "\n" for line in lines)


def write_yolo(images: pd.DataFrame, boxes: pd.DataFrame, classes: list[str], target: str | Path
               ) -> WrittenAnnotations:
    """Write data.yaml and one label file per image under `target` (see curate.export.formats.boxes for
    the tables). Copy each image to `target / result.images[path]`."""
    target = Path(target)
    items = images_with_boxes(images, boxes, classes)
    placed = {item.path: image_target(item.path, item.split) for item in items}
    unique_targets({p: label_target(t) for p, t in placed.items()}, "the label file")
    files = []
    for item in items:
        label_file = target / label_target(placed[item.path])
        storage.write_text(label_file, yolo_lines(item.boxes, item.width, item.height, classes))
        files.append(label_file)
    present = [s for s in SPLITS if any(item.split == s for item in items)] or ["train"]
    data = {f"{s}": f"images/{s}" for s in present}
    data.setdefault("val", data.get("train", f"images/{present[0]}"))
    data.update(nc=len(classes), names=dict(enumerate(classes)))
    storage.write_text(target / "data.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return WrittenAnnotations([target / "data.yaml"] + files, placed)
