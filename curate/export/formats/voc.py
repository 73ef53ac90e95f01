"""Pascal VOC export: `Annotations/<path>.xml` (one per image), images under `JPEGImages/<path>`.

Corners are written in VOC's 1-based inclusive convention, the inverse of the reader's
(xmin = x0 + 1, ymin = y0 + 1, xmax = x1, ymax = y1): an integer when the value is one, else the float
rounded to 1e-9 px, so reading the file back gives the same box within that. VOC has no crowd flag (iscrowd is not written);
<truncated> and <difficult> are written as 0.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

import pandas as pd

from curate import storage
from curate.export.formats.boxes import (ImageBoxes, WrittenAnnotations, images_with_boxes, number,
                                         unique_targets, with_suffix)


def image_target(path: str) -> str:
    """Where the image of manifest path `path` goes, relative to the export folder."""
    return str(PurePosixPath("JPEGImages", path))


def annotation_target(path: str) -> str:
    return with_suffix(str(PurePosixPath("Annotations", path)), ".xml")


def voc_xml(item: ImageBoxes) -> str:
    """The <annotation> document of one image."""
    root = ET.Element("annotation")
    image = PurePosixPath(item.path)
    _sub(root, "folder", str(image.parent) if str(image.parent) != "." else "JPEGImages")
    _sub(root, "filename", image.name)
    _sub(root, "path", image_target(item.path))
    size = _sub(root, "size")
    for tag, value in (("width", item.width), ("height", item.height), ("depth", 3)):
        _sub(size, tag, str(value))
    _sub(root, "segmented", "0")
    b = item.boxes
    for label, x0, y0, x1, y1 in zip(b["label"], b["x0"], b["y0"], b["x1"], b["y1"]):
        obj = _sub(root, "object")
        for tag, value in (("name", label), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            _sub(obj, tag, value)
        box = _sub(obj, "bndbox")
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            _sub(box, tag, number(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def write_voc(images: pd.DataFrame, boxes: pd.DataFrame, classes: list[str], target: str | Path
              ) -> WrittenAnnotations:
    """Write one XML file per image under `target/Annotations` (tables: see curate.export.formats.boxes).
    Copy each image to `target / result.images[path]`."""
    target = Path(target)
    items = images_with_boxes(images, boxes, classes)
    unique_targets({item.path: annotation_target(item.path) for item in items}, "the annotation file")
    files = []
    for item in items:
        files.append(target / annotation_target(item.path))
        storage.write_text(files[-1], voc_xml(item))
    return WrittenAnnotations(files, {item.path: image_target(item.path) for item in items})
