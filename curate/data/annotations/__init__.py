"""Object annotations in: COCO JSON, YOLO (data.yaml) and Pascal VOC, read into one box table
(`curate.data.items.BOX_COLUMNS`) in pixels of the images as decoded. DESIGN.md section 7; docs/annotations.md.

    sizes = {path: (w, h) for path, w, h in manifest[["path", "width", "height"]].itertuples(index=False)}
    found = read_annotations("data.yaml", images_root, sizes)
    found.usable   # boxes to turn into object items
    found.problems # rows to report, each with its reason

Bad annotations are rows with a `problem`, never an exception: only a source with nothing usable in it
(unparseable, or not annotations at all) raises ValueError.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping

import yaml

from curate.data.annotations.base import FORMATS, AnnotationSet, Size, check_box
from curate.data.annotations.coco import looks_like_coco, read_coco
from curate.data.annotations.voc import is_voc_file, read_voc, xml_files
from curate.data.annotations.yolo import read_yolo

log = logging.getLogger(__name__)

READERS = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc}
__all__ = ["FORMATS", "AnnotationSet", "Size", "check_box", "detect_format", "read_annotations"]


def detect_format(path: str | Path) -> str:
    """"coco", "yolo" or "voc", from the content (the file name does not matter).

    A JSON object with `images`, `annotations` and `categories` lists is COCO; a YAML mapping with `names`
    and `path`, `train` or `val` is a YOLO data.yaml; a folder (or a file) of XML with <annotation> roots
    is VOC. Anything else raises ValueError saying what each format needs.
    """
    path = Path(path)
    if path.is_dir():
        if any(is_voc_file(f) for f in xml_files(path)[:20]):
            return "voc"
    elif path.is_file():
        found = _detect_file(path)
        if found:
            return found
    else:
        raise ValueError(f"{path}: no such file or folder")
    raise ValueError(f"{path}: not a known annotation format; give a COCO instances .json (images, annotations, "
                     "categories), a YOLO data.yaml (names + path/train/val), or a folder of Pascal VOC .xml files")


def _detect_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    head = text.lstrip()[:1]
    if head == "{":
        try:
            if looks_like_coco(json.loads(text)):
                return "coco"
        except json.JSONDecodeError:
            pass
    if head == "<":
        return "voc" if is_voc_file(path) else None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and "names" in data and any(k in data for k in ("path", "train", "val")):
        return "yolo"
    return None


def read_annotations(path: str | Path, images_root: str | Path, sizes: Mapping[str, Size],
                     format: str | None = None) -> AnnotationSet:
    """The boxes of the annotation source at `path`, mapped onto the scanned images.

    images_root: the folder the manifest paths are relative to.
    sizes: {manifest path (POSIX, relative to images_root): (width, height) as decoded}.
    format: "coco", "yolo" or "voc"; None detects it from the content (a big COCO file is then parsed twice).
    """
    fmt = format or detect_format(path)
    if fmt not in READERS:
        raise ValueError(f"annotation format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    found = READERS[fmt](Path(path), images_root, sizes)
    bad = found.boxes["problem"].notna().sum()
    log.info("%s (%s): %d boxes on %d images, %d with a problem", path, fmt, len(found.boxes) - bad,
             len(found.images), bad)
    return found
