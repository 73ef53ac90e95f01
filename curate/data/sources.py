"""What to decode for an item: the one decode that thumbnails, training views, embeddings and exports share.

An image is its file. A frame is its video at `time_ms` (the scan keeps each sampled frame in the frame
store, `cache/frames/ID.png`, so later steps read it back instead of seeking again; without the store it
is decoded with a keyframe seek, `curate.data.video.frame_at`). An object is a crop of its parent (an
image or a frame) around its box, with a little context, squared so that the box keeps its shape.

A `Source` is a small frozen record that pickles and turns into a string and back (`str` / `parse`),
so an engine can ship it to other processes as it ships paths.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from curate.data.images import fit_square, load_rgb
from curate.data.items import kinds

CONTEXT = 0.1  # share of the box's longer side added around it on every side: an object is seen in its setting
FRAME_STORE_SIDE = 512  # frames are kept at most this long a side: enough for thumbnails and training views


@dataclass(frozen=True)
class Source:
    path: str  # the file: an image, or a video
    kind: str = "image"  # image | frame | object
    box: tuple[float, float, float, float] | None = None  # object: x0, y0, x1, y1 in the parent's pixels
    time_ms: int | None = None  # frame, or object of a frame: the frame's time in the video
    store: str | None = None  # the frame's decoded copy (frame store), when the scan kept one

    def __str__(self) -> str:
        return self.path if self.kind == "image" else json.dumps({k: v for k, v in asdict(self).items()
                                                                 if v is not None})

    @staticmethod
    def parse(text: str | Path | Source) -> Source:
        """A Source from `str(source)` or a plain image path."""
        if isinstance(text, Source):
            return text
        text = str(text)
        if not text.startswith("{"):
            return Source(text)
        fields = json.loads(text)
        if fields.get("box") is not None:
            fields["box"] = tuple(fields["box"])
        return Source(**fields)


def frame_store_file(store_dir: Path, video_id: int, time_ms: int) -> Path:
    return Path(store_dir) / f"{int(video_id)}_{int(time_ms)}.png"


def item_sources(root: Path, manifest: pd.DataFrame, store_dir: Path | None = None) -> list[Source]:
    """The Source of every manifest row (row i: id i), whatever its status."""
    root = Path(root)
    paths = [str(root / p) for p in manifest["path"].astype(str)]
    found = kinds(manifest)
    if (found == "image").all():
        return [Source(p) for p in paths]
    parent = manifest["parent"].to_numpy(dtype=float, na_value=np.nan)
    times = manifest["time_ms"].to_numpy(dtype=float, na_value=np.nan)
    boxes = manifest[["x0", "y0", "x1", "y1"]].to_numpy(dtype=float, na_value=np.nan)

    def frame(i: int) -> Source:
        store = frame_store_file(store_dir, int(parent[i]), int(times[i])) if store_dir is not None else None
        return Source(paths[i], "frame", time_ms=int(times[i]), store=str(store) if store is not None else None)

    out: list[Source] = []
    for i, kind in enumerate(found):
        if kind == "frame":
            out.append(frame(i))
        elif kind == "object" and not np.isnan(parent[i]):
            p = int(parent[i])
            base = frame(p) if found[p] == "frame" else Source(paths[p])
            out.append(Source(base.path, "object", tuple(boxes[i]), base.time_ms, base.store))
        else:
            out.append(Source(paths[i], kind))
    return out


def item_source(root: Path, manifest: pd.DataFrame, item_id: int, store_dir: Path | None = None) -> Source:
    """The Source of manifest row `item_id` alone (`item_sources(...)[item_id]` without building them all)."""
    i = int(item_id)
    kind = str(kinds(manifest.iloc[[i]])[0])
    path = str(Path(root) / str(manifest["path"].iloc[i]))
    if kind not in ("frame", "object"):
        return Source(path, kind)
    row = manifest.iloc[i]

    def frame(j: int) -> Source:
        time_ms = int(manifest["time_ms"].iloc[j])
        store = frame_store_file(store_dir, int(manifest["parent"].iloc[j]), time_ms) if store_dir is not None else None
        return Source(path, "frame", time_ms=time_ms, store=str(store) if store is not None else None)

    if kind == "frame":
        return frame(i)
    if pd.isna(row["parent"]):
        return Source(path, kind)
    parent = int(row["parent"])
    base = frame(parent) if str(kinds(manifest.iloc[[parent]])[0]) == "frame" else Source(path)
    box = tuple(float(row[c]) for c in ("x0", "y0", "x1", "y1"))
    return Source(base.path, "object", box, base.time_ms, base.store)


def load_item(source: Source | str | Path, max_side: int | None = None) -> Image.Image:
    """The item's pixels as an upright RGB image: the file, the frame, or the object's crop with context.
    Raises ImageError (VideoError for videos) with the reason when it does not decode."""
    source = Source.parse(source)
    if source.kind == "image":
        return load_rgb(source.path, max_side=max_side)
    if source.kind == "object":
        return crop_with_context(_load_frame_or_image(source, full=True), source.box)
    img = _load_frame_or_image(source)
    return shrink(img, max_side)


def decode_item(source: Source | str | Path, size: int) -> np.ndarray:
    """(size, size, 3) uint8 of the item, as the decode cache stores it."""
    source = Source.parse(source)
    if source.kind == "object":
        return np.asarray(load_item(source).resize((size, size), Image.BILINEAR))  # already square
    return fit_square(load_item(source, max_side=4 * size), size)


def crop_with_context(img: Image.Image, box, context: float = CONTEXT) -> Image.Image:
    """The square region around `box` (x0, y0, x1, y1 in `img`'s pixels): side = the box's longer side
    plus `context` of it on each side, centred on the box; what falls outside the image is grey."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0) * (1 + 2 * context)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = max(1, int(round(side)))
    canvas = Image.new("RGB", (n, n), (124, 116, 104))  # ImageNet's mean colour: the least surprising pad
    region = img.crop((max(left, 0), max(top, 0), min(left + n, img.width), min(top + n, img.height)))
    canvas.paste(region, (max(left, 0) - left, max(top, 0) - top))
    return canvas


def box_crop(img: Image.Image, box) -> Image.Image:
    """Exactly the box, no context (exports of `--format crops`)."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return img.crop((max(x0, 0), max(y0, 0), min(x1, img.width), min(y1, img.height)))


def parent_image(source: Source | str) -> Image.Image:
    """The full image (or frame) an object belongs to, or the item itself."""
    source = Source.parse(source)
    return load_rgb(source.path) if source.time_ms is None else _load_frame_or_image(source, full=True)


def _load_frame_or_image(source: Source, full: bool = False) -> Image.Image:
    if source.time_ms is None:
        return load_rgb(source.path)
    if not full and source.store and Path(source.store).exists():
        return _stored_frame(source)
    from curate.data.video import frame_at

    img = frame_at(source.path, source.time_ms)
    return img if full else shrink(img, FRAME_STORE_SIDE)


def _stored_frame(source: Source) -> Image.Image:
    with Image.open(source.store) as img:
        return img.convert("RGB")


def shrink(img: Image.Image, max_side: int | None) -> Image.Image:
    """`img` scaled down to at most `max_side` a side (bilinear), or itself: the frame store keeps frames so."""
    if max_side is None or max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
