"""What the annotation writers share: checking the tables they take and grouping the boxes by image.

Every writer takes
    images: a frame with `path` (manifest path), `width`, `height` (as decoded) and optionally `split`
        ("train", "val" or "test"; default "train");
    boxes: a frame with `curate.data.items.BOX_COLUMNS` (rows with a problem, or of images not in `images`,
        are left out, so the whole box table can be passed with a selection's images);
    classes: the class names in order (a writer that numbers classes numbers them by this order);
and writes annotation files only. It returns where each image must go (`WrittenAnnotations.images`): the
caller copies the image files there.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from curate.data.items import BOX_COLUMNS

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class WrittenAnnotations:
    """files: the annotation files written; images: {manifest path: path relative to the target folder
    where the image file must be copied for the annotations to find it}."""

    files: list[Path]
    images: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageBoxes:
    """One image to write: its manifest path, decoded size, split and usable boxes (BOX_COLUMNS rows)."""

    path: str
    width: int
    height: int
    split: str
    boxes: pd.DataFrame


def images_with_boxes(images: pd.DataFrame, boxes: pd.DataFrame, classes: list[str]) -> list[ImageBoxes]:
    """The images in table order, each with its usable boxes; ValueError for a box label not in `classes`
    or a malformed table (what to fix named in the message)."""
    _check_columns(images, boxes)
    usable = boxes[boxes["problem"].isna() & boxes["image"].isin(set(images["path"]))]
    if len(usable) < len(boxes):
        log.info("writing %d of %d boxes (the rest have a problem or belong to images not exported)",
                 len(usable), len(boxes))
    unknown = sorted(set(usable["label"]) - set(classes), key=str)
    if unknown:
        raise ValueError(f"box labels {unknown[:5]} are not in the class list; add them to `classes`")
    by_image = dict(tuple(usable.groupby("image", sort=False)))
    empty = usable.iloc[:0]
    splits = images["split"] if "split" in images.columns else pd.Series("train", index=images.index)
    out = []
    for path, w, h, split in zip(images["path"], images["width"], images["height"], splits):
        if split not in SPLITS:
            raise ValueError(f"image {path}: split must be one of {', '.join(SPLITS)}, not {split!r}")
        out.append(ImageBoxes(str(path), int(w), int(h), split, by_image.get(path, empty)))
    return out


def _check_columns(images: pd.DataFrame, boxes: pd.DataFrame) -> None:
    missing = {"path", "width", "height"} - set(images.columns)
    if missing:
        raise ValueError(f"the images table lacks columns {sorted(missing)} (manifest path, width, height)")
    missing = set(BOX_COLUMNS) - set(boxes.columns)
    if missing:
        raise ValueError(f"the boxes table lacks columns {sorted(missing)}; see curate.data.items.BOX_COLUMNS")
    if images["path"].duplicated().any():
        raise ValueError(f"the images table repeats {images['path'][images['path'].duplicated()].iloc[0]}")


def unique_targets(targets: dict[str, str], what: str) -> None:
    """ValueError when two images would share one annotation file (a.jpg and a.png both give a.txt)."""
    seen: dict[str, str] = {}
    for image, target in targets.items():
        if target in seen:
            raise ValueError(f"{image} and {seen[target]} would both write {what} {target}; rename one of them")
        seen[target] = image


def with_suffix(path: str, suffix: str) -> str:
    return str(PurePosixPath(path).with_suffix(suffix))


def number(value: float) -> str:
    """A pixel value as text: an integer when it is one, else the float rounded to 1e-9 px (which drops
    the arithmetic noise, 210.78988800000002 -> 210.789888, and keeps reads within 1e-9 px)."""
    value = clean(value)
    return str(int(value)) if value.is_integer() else repr(value)


def clean(value: float) -> float:
    """`value` rounded to 9 decimals: far below any pixel or percent precision that matters, and it
    keeps written files free of float noise."""
    if not math.isfinite(value):
        raise ValueError(f"a box corner is {value}: only finite boxes can be written")
    return round(float(value), 9)
