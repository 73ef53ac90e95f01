"""Pascal VOC: a folder of XML files, one per image, each an <annotation> with <object>s.

VOC stores 1-based pixel indices, both ends inclusive: a box covering the whole of a W-pixel-wide image is
xmin=1, xmax=W. In continuous pixels that is x0 = xmin - 1, x1 = xmax (the convention of Detectron2's
VOC loader); the writer inverts it exactly. The image is found by <path>, then <folder>/<filename>, then
<filename>. <difficult>, <truncated> and <pose> are not read (VOC has no crowd flag: iscrowd is False).
The annotation key is the XML file (relative to the folder read) and the 0-based index of the <object>.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Mapping

from curate.data.annotations.base import (AnnotationSet, ImageIndex, Size, box_frame, box_row, check_box,
                                          relative_key, stamp)


CORNERS = ("xmin", "ymin", "xmax", "ymax")


def xml_files(path: Path) -> list[Path]:
    """The XML files of a VOC folder (searched below it: an `Annotations/` folder may be nested), or the
    one file when `path` is a file."""
    return [path] if path.is_file() else sorted(path.rglob("*.xml"))


def is_voc_file(path: Path) -> bool:
    """True for an XML file whose root element is <annotation> (read up to the root only)."""
    try:
        for _, element in ET.iterparse(path, events=("start",)):
            return element.tag == "annotation"
    except (OSError, ET.ParseError):
        return False
    return False


def read_voc(path: str | Path, images_root: str | Path, sizes: Mapping[str, Size]) -> AnnotationSet:
    """Read every XML file under `path`; a malformed file becomes a problem row, and ValueError is raised
    only when no file could be read."""
    path = Path(path)
    base = path.parent if path.is_file() else path
    files = xml_files(path)
    if not files:
        raise ValueError(f"{path}: no .xml files found; point at the folder of VOC annotation files")
    index = ImageIndex(images_root, sizes)
    stamps = {os.path.abspath(path): stamp(path)} if path.is_dir() else {}
    rows, covered, failed = [], set(), []
    for xml in files:
        stamps[os.path.abspath(xml)] = stamp(xml)
        key = relative_key(xml, base)
        root, why = _parse(xml)
        if root is None:
            failed.append(xml.name)
            rows.append(box_row(None, None, None, key, problem=why))
            continue
        image, image_problem = _find_image(root, index)
        if image is not None:
            covered.add(image)
        rows += _objects(root, image, image_problem, index.sizes.get(image), key)
    if len(failed) == len(files):
        raise ValueError(f"{path}: no readable VOC annotation file ({', '.join(failed[:3])}"
                         f"{', ...' if len(failed) > 3 else ''}); each needs an <annotation> root")
    classes = sorted({r["label"] for r in rows if r["label"]})
    return AnnotationSet("voc", box_frame(rows), sorted(covered), classes, stamps)


def _parse(xml: Path):
    """(root element, None) or (None, the problem)."""
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError) as exc:
        return None, f"malformed XML ({exc})"
    if root.tag != "annotation":
        return None, f"not a VOC annotation (root element <{root.tag}>, expected <annotation>)"
    return root, None


def _find_image(root: ET.Element, index: ImageIndex) -> tuple[str | None, str | None]:
    """(manifest path, None) or (None, why), from <path>, <folder>/<filename>, <filename> in that order,
    with a problem when <size> differs from the decoded image."""
    filename = (root.findtext("filename") or "").strip()
    folder = (root.findtext("folder") or "").strip()
    candidates = [(root.findtext("path") or "").strip(), f"{folder}/{filename}" if folder and filename else "",
                  filename]
    why = "no <filename> or <path> names the image"
    for name in filter(None, candidates):
        found, reason = index.find(name)
        if found is not None:
            return found, _size_mismatch(root, index.sizes[found])
        why = reason
    return None, why


def _size_mismatch(root: ET.Element, size: Size) -> str | None:
    try:
        w, h = int(root.findtext("size/width")), int(root.findtext("size/height"))
    except (TypeError, ValueError):
        return None  # no (or no usable) <size>: nothing to compare
    if (w, h) == tuple(size) or (w, h) == (0, 0):
        return None
    return f"<size> in the file ({w}x{h}) differs from the decoded image ({size[0]}x{size[1]})"


def _objects(root: ET.Element, image, image_problem, size: Size | None, key: str) -> list[dict]:
    objects = root.findall("object")
    if not objects and image is None:
        return [box_row(None, None, None, key, problem=image_problem)]
    rows = []
    for k, obj in enumerate(objects):
        label = (obj.findtext("name") or "").strip() or None
        box = _bndbox(obj)
        problem = image_problem
        if box is None:
            problem = problem or "malformed <bndbox>: needs numeric xmin, ymin, xmax, ymax"
        elif label is None:
            problem = problem or "object without a <name>"
        elif problem is None:
            box, problem = check_box(box, size)
        rows.append(box_row(image, box, label, f"{key}#{k}", problem=problem))
    return rows


def _bndbox(obj: ET.Element) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) in continuous pixels from VOC's 1-based inclusive corners."""
    try:
        xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{c}")) for c in CORNERS)
    except (TypeError, ValueError):
        return None
    return xmin - 1.0, ymin - 1.0, xmax, ymax
