"""What every annotation reader shares: the AnnotationSet it returns, the box check, the lookup from the
names an annotation file uses to the manifest's image paths, and the file stamps a rescan compares.

Coordinates are continuous pixels of the image as decoded (EXIF orientation applied): the image spans
[0, width] x [0, height], a box is its top-left (x0, y0) and bottom-right (x1, y1) corner.
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Mapping

import pandas as pd

from curate.data.items import BOX_COLUMNS

FORMATS = ("coco", "yolo", "voc")
Size = tuple[int, int]  # (width, height) of the image as decoded


@dataclass(frozen=True)
class AnnotationSet:
    """The boxes of one annotation source, mapped onto the manifest.

    format: "coco", "yolo" or "voc".
    boxes: one row per annotation, columns exactly `BOX_COLUMNS`; rows with a `problem` are kept so they can
        be reported (x0..y1 may be NaN there, `image` None when the image is unknown).
    images: sorted manifest paths the source covers, images without any box included (so "images with no
        boxes" can be checked).
    classes: class names in the source's own order (COCO: category id; YOLO: `names`; VOC: sorted).
    files: {path: [size, mtime_ns]} of every file read and folder listed, so a rescan can tell whether the
        annotations changed (a folder's mtime changes when a file is added or removed).
    """

    format: str
    boxes: pd.DataFrame
    images: list[str]
    classes: list[str]
    files: dict[str, list[int]] = field(default_factory=dict)

    @property
    def usable(self) -> pd.DataFrame:
        """The boxes without a problem (what an export or the object items take)."""
        return self.boxes[self.boxes["problem"].isna()]

    @property
    def problems(self) -> pd.DataFrame:
        """The rows with a problem, to report."""
        return self.boxes[self.boxes["problem"].notna()]


def box_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a frame with exactly BOX_COLUMNS (floats for the corners, bool for iscrowd, None where a
    string is missing, so `problem.isna()` finds the usable rows)."""
    frame = pd.DataFrame(rows, columns=BOX_COLUMNS)
    for col in ("x0", "y0", "x1", "y1"):
        frame[col] = frame[col].astype("float64")
    frame["iscrowd"] = frame["iscrowd"].fillna(False).astype(bool)
    for col in ("image", "label", "annotation", "problem"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame.reset_index(drop=True)


def box_row(image, box, label, annotation, iscrowd=False, problem=None) -> dict:
    """One row of the box table; `box` is (x0, y0, x1, y1) or None (unknown: NaN corners)."""
    x0, y0, x1, y1 = box if box is not None else (math.nan,) * 4
    return {"image": image, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": label,
            "annotation": annotation, "iscrowd": bool(iscrowd), "problem": problem}


def check_box(box: tuple[float, float, float, float], size: Size | None):
    """(box, problem): the box clipped to the image, with problem None when it is usable.

    A box that overlaps the image but reaches past its edge is clipped and kept (rounding in normalised or
    1-based formats puts many boxes a hair outside; clipping is what trainers do with them). A box with no
    overlap at all, zero or negative area, or a non-finite corner gets a problem and is left as it was.
    `size` None (image unknown) skips the image checks.
    """
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in box):
        return box, "a corner is not a finite number"
    if x1 <= x0 or y1 <= y0:
        return box, f"zero or negative area ({x1 - x0:g} x {y1 - y0:g} px)"
    if size is None:
        return box, None
    w, h = size
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        return box, f"outside the image ({w}x{h}): box {x0:g},{y0:g},{x1:g},{y1:g}"
    return (max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))), None


class ImageIndex:
    """Finds the manifest path an annotation file means by an image name.

    A name is tried as a path relative to images_root, then as an absolute path under it, then by its
    trailing path components: the manifest path sharing the longest suffix with it wins (so
    `train2017/a.jpg` finds `images/train2017/a.jpg`); a tie between several images is ambiguous.
    """

    def __init__(self, images_root: str | os.PathLike, sizes: Mapping[str, Size]):
        self.root = Path(os.path.abspath(images_root))
        self.sizes = dict(sizes)
        self._by_name: dict[str, list[str]] = defaultdict(list)
        for path in self.sizes:
            self._by_name[PurePosixPath(path).name].append(path)

    def find(self, name: str) -> tuple[str | None, str | None]:
        """(manifest path, None) or (None, why it was not found)."""
        name = str(name).replace("\\", "/")
        if name in self.sizes:
            return name, None
        if os.path.isabs(name):
            try:
                rel = Path(os.path.abspath(name)).relative_to(self.root).as_posix()
            except ValueError:
                rel = None
            if rel in self.sizes:
                return rel, None
        parts = [p for p in PurePosixPath(name).parts if p not in ("/", ".")]
        if not parts:
            return None, "no image name"
        candidates = self._by_name.get(parts[-1], [])
        if not candidates:
            return None, f"image {name!r} is not in the scanned images under {self.root}"
        best = _longest_suffix(parts, candidates)
        if len(best) > 1:
            return None, f"image {name!r} is ambiguous: {len(best)} scanned images match it ({best[0]}, {best[1]}, ...)"
        return best[0], None

    def find_file(self, path: Path) -> str | None:
        """The manifest path of a file on disk (by its place under images_root, else by name)."""
        found, _ = self.find(os.path.abspath(path))
        return found


def _longest_suffix(parts: list[str], candidates: list[str]) -> list[str]:
    def shared(candidate: str) -> int:
        other = PurePosixPath(candidate).parts
        n = 0
        while n < min(len(parts), len(other)) and parts[-1 - n] == other[-1 - n]:
            n += 1
        return n

    scores = {c: shared(c) for c in candidates}
    top = max(scores.values())
    return sorted(c for c, s in scores.items() if s == top)


def stamp(path: Path) -> list[int]:
    """[size, mtime_ns] of a file or folder: what a rescan compares to tell that it changed."""
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def relative_key(path: Path, base: Path) -> str:
    """`path` relative to `base` as a POSIX string (the file part of an `annotation` key)."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return Path(path).as_posix()
