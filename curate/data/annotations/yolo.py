"""YOLO detection labels, found from a data.yaml the way ultralytics finds them.

data.yaml: `path` (the dataset root; relative to the yaml's folder, which is also the default), `train`,
`val`, `test` (each a folder of images, a .txt list of image paths, or a list of those; relative to the
root), `names` (a list, or a dict {class id: name}). An image's label file is its path with the last
`/images/` segment replaced by `/labels/` and the suffix by `.txt` (ultralytics' img2label_paths); no
label file means an image without objects. A line is `class cx cy w h`, normalised to 0-1 of the image as
decoded; a polygon line (`class x1 y1 x2 y2 ...`, ultralytics' segment format) gives its bounding box.
The annotation key is the label file (relative to the yaml's folder) and its 1-based line number.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import yaml

from curate.data.annotations.base import (AnnotationSet, ImageIndex, Size, box_frame, box_row, check_box,
                                          relative_key, stamp)


SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}


def load_data_yaml(path: Path) -> dict:
    """The parsed data.yaml, or ValueError naming the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not a readable YOLO data.yaml ({exc})") from exc
    if not isinstance(data, dict) or "names" not in data:
        raise ValueError(f"{path}: a YOLO data.yaml needs a `names` entry (class id -> name)")
    return data


def class_names(names, path: Path) -> dict[int, str]:
    """{class id: name} from `names` as a list or a dict."""
    try:
        pairs = names.items() if isinstance(names, dict) else enumerate(names)
        return {int(k): str(v) for k, v in pairs}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: `names` must be a list of class names or a dict {{id: name}} ({exc})") from exc


def label_path(image: str) -> str:
    """The label file ultralytics reads for `image`: last /images/ -> /labels/, suffix -> .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return sb.join(image.rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt"


def read_yolo(path: str | Path, images_root: str | Path, sizes: Mapping[str, Size]) -> AnnotationSet:
    """Read the labels of every image a data.yaml names (all splits); problems become rows."""
    path = Path(path)
    data = load_data_yaml(path)
    names = class_names(data["names"], path)
    root = path.parent / str(data.get("path") or ".")
    if not any(data.get(k) for k in SPLITS):
        raise ValueError(f"{path}: names no images (set `train`, `val` or `test` to a folder or a .txt list)")
    files = {os.path.abspath(path): stamp(path)}
    rows: list[dict] = []
    image_files, label_dirs = _split_images(data, root, path, files, rows)
    index = ImageIndex(images_root, sizes)
    covered, read = set(), set()
    for image_file in image_files:
        labels = Path(label_path(os.path.abspath(image_file)))
        read.add(labels)
        found = index.find_file(image_file)
        if found is not None:
            covered.add(found)
        if labels.is_file():
            files[os.path.abspath(labels)] = stamp(labels)
            rows += _read_label_file(labels, found, index.sizes.get(found), names, relative_key(labels, path.parent))
    rows += _orphans(label_dirs, read, path.parent, files)
    return AnnotationSet("yolo", box_frame(rows), sorted(covered), [names[k] for k in sorted(names)], files)


def _split_images(data: dict, root: Path, path: Path, files: dict, rows: list[dict]):
    """(image files of every split, without repeats; label folders of the split folders)."""
    images, label_dirs = {}, []
    for split in SPLITS:
        entries = data.get(split) or []
        for entry in [entries] if isinstance(entries, str) else entries:
            source = root / str(entry)
            if source.is_dir():
                files[os.path.abspath(source)] = stamp(source)
                images.update(dict.fromkeys(sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)))
                labels = Path(label_path(os.path.join(os.path.abspath(source), "x.jpg"))).parent
                if labels != Path(os.path.abspath(source)):
                    label_dirs.append(labels)
            elif source.is_file():
                files[os.path.abspath(source)] = stamp(source)
                images.update(dict.fromkeys(_image_list(source)))
            else:
                rows.append(box_row(None, None, None, relative_key(path, path.parent),
                                    problem=f"{split}: {source} is neither a folder nor a .txt list of images"))
    return list(images), label_dirs


def _image_list(source: Path) -> list[Path]:
    """The images a .txt list names, one a line; a relative line is relative to the list's folder."""
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    return [source.parent / line.strip() for line in lines if line.strip()]


def _read_label_file(labels: Path, image: str | None, size: Size | None, names: dict[int, str], key: str):
    """The rows of one label file; `image` None (not scanned) gives one problem row for the file."""
    try:
        text = labels.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [box_row(image, None, None, key, problem=f"unreadable label file ({exc})")]
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if image is None:
        return [box_row(None, None, None, key, problem="the label file's image is not among the scanned images")] \
            if lines else []
    rows, seen = [], {}
    for n, line in lines:
        rows.append(_line_row(line, image, size, names, f"{key}#{n}", seen.get(tuple(line.split()))))
        seen.setdefault(tuple(line.split()), n)
    return rows


def _line_row(line: str, image: str, size: Size, names: dict[int, str], key: str, duplicate_of: int | None):
    values = line.split()
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        numbers = []
    if len(numbers) < 5 or (len(numbers) > 5 and len(numbers) % 2 == 0) or not numbers[0].is_integer():
        return box_row(image, None, None, key, problem=f"malformed line {line.strip()[:60]!r}: "
                       "expected 'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 ...')")
    cls = int(numbers[0])
    w, h = size
    if len(numbers) == 5:
        cx, cy, bw, bh = numbers[1:]
        box = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
    else:
        xs, ys = numbers[1::2], numbers[2::2]
        box = (min(xs) * w, min(ys) * h, max(xs) * w, max(ys) * h)
    if cls not in names:
        return box_row(image, box, None, key, problem=f"unknown class id {cls} (data.yaml names {len(names)} classes)")
    box, problem = check_box(box, size)
    if problem is None and duplicate_of is not None:
        problem = f"duplicate of line {duplicate_of}"
    return box_row(image, box, names[cls], key, problem=problem)


def _orphans(label_dirs: list[Path], read: set[Path], base: Path, files: dict) -> list[dict]:
    """A problem row for each label file in the split's label folders that no image claims."""
    rows = []
    for folder in label_dirs:
        if not folder.is_dir():
            continue
        files[os.path.abspath(folder)] = stamp(folder)
        for labels in sorted(folder.rglob("*.txt")):
            if Path(os.path.abspath(labels)) not in read:
                files[os.path.abspath(labels)] = stamp(labels)
                rows.append(box_row(None, None, None, relative_key(labels, base), problem="label file without an image"))
    return rows
