"""COCO instances export: `annotations/instances.json`, images under `images/<path>`.

Image, category and annotation ids count from 1 in table order (category ids follow `classes`, so reading
the file back gives the same class order). A bbox is [x0, y0, x1 - x0, y1 - y0] in pixels of the image as
decoded, rounded to 1e-9 px (reads back within that); `segmentation` is the box as a polygon, so pycocotools' annToMask and
COCOeval work on it; `area` is the box area.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from curate import storage
from curate.export.formats.boxes import WrittenAnnotations, clean, images_with_boxes

ANNOTATIONS = "annotations/instances.json"


def image_target(path: str) -> str:
    """Where the image of manifest path `path` goes, relative to the export folder."""
    return str(PurePosixPath("images", path))


def coco_document(images: pd.DataFrame, boxes: pd.DataFrame, classes: list[str]) -> dict:
    """The COCO instances document; `file_name` is the manifest path (relative to `images/`)."""
    items = images_with_boxes(images, boxes, classes)
    category = {name: k for k, name in enumerate(classes, 1)}
    doc = {"info": {"description": "exported by curate"}, "licenses": [], "images": [], "annotations": [],
           "categories": [{"id": k, "name": name, "supercategory": ""} for name, k in category.items()]}
    for image_id, item in enumerate(items, 1):
        doc["images"].append({"id": image_id, "file_name": item.path, "width": item.width, "height": item.height})
        b = item.boxes
        for label, x0, y0, x1, y1, crowd in zip(b["label"], b["x0"], b["y0"], b["x1"], b["y1"], b["iscrowd"]):
            x0, y0, x1, y1 = clean(x0), clean(y0), clean(x1), clean(y1)
            w, h = clean(x1 - x0), clean(y1 - y0)
            doc["annotations"].append({
                "id": len(doc["annotations"]) + 1, "image_id": image_id, "category_id": category[label],
                "bbox": [x0, y0, w, h], "area": clean(w * h), "iscrowd": int(bool(crowd)),
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
    return doc


def write_coco(images: pd.DataFrame, boxes: pd.DataFrame, classes: list[str], target: str | Path
               ) -> WrittenAnnotations:
    """Write `annotations/instances.json` under `target` (tables: see curate.export.formats.boxes).
    Copy each image to `target / result.images[path]`."""
    path = Path(target) / ANNOTATIONS
    storage.write_json(path, coco_document(images, boxes, classes))
    return WrittenAnnotations([path], {p: image_target(p) for p in images["path"]})
