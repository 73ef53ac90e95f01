"""COCO instances JSON (`images`, `annotations`, `categories`), boxes only.

A bbox is [x, y, width, height] in pixels from the image's top-left corner: x0, y0 = x, y and
x1, y1 = x + width, y + height. `file_name` is found among the scanned images by relative path, else by
its trailing path components (see ImageIndex). Segmentation masks and keypoints are not read.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from curate.data.annotations.base import (AnnotationSet, ImageIndex, Size, box_frame, box_row, check_box,
                                          relative_key, stamp)


def looks_like_coco(obj) -> bool:
    """True for a parsed JSON object with COCO's three top-level lists."""
    return isinstance(obj, dict) and all(isinstance(obj.get(k), list) for k in ("images", "annotations", "categories"))


def read_coco(path: str | Path, images_root: str | Path, sizes: Mapping[str, Size]) -> AnnotationSet:
    """Read a COCO instances file; malformed entries become problem rows, an unreadable file a ValueError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable COCO JSON file ({exc}); fix or re-export it") from exc
    if not looks_like_coco(data):
        raise ValueError(f"{path}: a COCO file needs top-level lists 'images', 'annotations' and 'categories'")
    key = relative_key(path, path.parent)
    index = ImageIndex(images_root, sizes)
    rows: list[dict] = []
    categories = _categories(data["categories"], key, rows)
    images = _images(data["images"], index, key, rows)
    for k, ann in enumerate(data["annotations"]):
        rows.append(_annotation(ann, k, images, categories, index.sizes, key))
    covered = sorted({found for found, _ in images.values() if found is not None})
    return AnnotationSet("coco", box_frame(rows), covered, [categories[c] for c in sorted(categories)],
                         {os.path.abspath(path): stamp(path)})


def _categories(entries: list, key: str, rows: list[dict]) -> dict[int, str]:
    """{category id: name}; a malformed entry becomes a problem row."""
    out = {}
    for k, cat in enumerate(entries):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            rows.append(box_row(None, None, None, f"{key}#category{k}", problem=f"malformed category entry {k}: "
                                "needs an integer 'id' and a string 'name'"))
            continue
        out[cat["id"]] = cat["name"]
    return out


def _images(entries: list, index: ImageIndex, key: str, rows: list[dict]) -> dict:
    """{image id: (manifest path or None, problem or None)}."""
    out = {}
    for k, img in enumerate(entries):
        if not isinstance(img, dict) or not isinstance(img.get("id"), (int, str)) \
                or not isinstance(img.get("file_name"), str):
            rows.append(box_row(None, None, None, f"{key}#image{k}", problem=f"malformed image entry {k}: "
                                "needs 'id' and a string 'file_name'"))
            continue
        found, why = index.find(img["file_name"])
        if found is not None:
            why = _size_mismatch(img, index.sizes[found])
        out[img["id"]] = (found, why)
    return out


def _size_mismatch(img: dict, size: Size) -> str | None:
    """A problem when the file's image size differs from the decoded one (often EXIF orientation: the
    boxes were drawn on the image as stored, not as shown)."""
    w, h = img.get("width"), img.get("height")
    if w is None or h is None or (w, h) == tuple(size):
        return None
    return f"image size in the file ({w}x{h}) differs from the decoded image ({size[0]}x{size[1]})"


def _annotation(ann, k: int, images: dict, categories: dict[int, str], sizes, key: str) -> dict:
    if not isinstance(ann, dict):
        return box_row(None, None, None, f"{key}#{k}", problem=f"malformed annotation entry {k}: not an object")
    ann_key = f"{key}#{ann.get('id', k)}"
    iscrowd = bool(ann.get("iscrowd", 0))
    image, image_problem = images.get(_id(ann.get("image_id")), (None, f"unknown image_id {ann.get('image_id')!r}"))
    label = categories.get(_id(ann.get("category_id")))
    box = _bbox(ann.get("bbox"))
    if box is None:
        return box_row(image, None, label, ann_key, iscrowd, f"malformed bbox {ann.get('bbox')!r}: "
                       "needs [x, y, width, height]")
    x, y, w, h = box
    box = (x, y, x + w, y + h)
    problem = image_problem
    if problem is None and label is None:
        problem = f"unknown category_id {ann.get('category_id')!r}"
    if problem is None:
        box, problem = check_box(box, sizes[image])
    return box_row(image, box, label, ann_key, iscrowd, problem)


def _id(value):
    """`value` if it can be a dict key (an id), else None (a malformed id matches nothing)."""
    return value if isinstance(value, (int, str)) else None


def _bbox(value) -> tuple[float, ...] | None:
    if not isinstance(value, list) or len(value) != 4:
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
