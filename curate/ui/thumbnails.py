"""Display thumbnails: decode safely with curate's `load_rgb` (objects and frames through
`curate.data.sources.load_item`, the one decode every step shares), upscale tiny images crisply.

Pure image code (no streamlit): path or item Source in, encoded PNG bytes out.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from PIL import Image, ImageDraw

from curate.data.images import ImageError, load_rgb
from curate.data.sources import Source, load_item, parent_image
from curate.workspace import resolve_inside

THUMB_SIZE = 96  # px: the long side of a thumbnail on screen


def thumbnail_png(source: Path | io.BytesIO, size: int = THUMB_SIZE) -> bytes:
    """PNG bytes of `source` fitted into a `size` x `size` box (aspect kept).

    Small images (32 px CIFAR) are enlarged by a whole factor with nearest-neighbour so pixels
    stay sharp instead of blurred; large ones are reduced with bilinear filtering. An image that
    cannot be decoded yields a grey placeholder naming the reason.
    """
    try:
        img = load_rgb(source, max_side=2 * size)
    except ImageError as err:
        return placeholder_png(str(err), size)
    return png(fit_box(img, size))


def thumbnail_inside(root: Path, rel: str, size: int = THUMB_SIZE, source: Source | None = None) -> bytes:
    """`thumbnail_png` of `root`/`rel`, opened only when it is a regular file inside `root` (else a placeholder).

    `source`: the item when it is not the whole file (an object: its crop with context; a frame: the frame,
    from the frame store when the scan kept it). Its file is still `rel` (an object or frame has its
    parent's path), so the same check applies before anything is decoded."""
    try:
        path = resolve_inside(Path(root), rel)
    except PermissionError as err:  # outside the root, or no longer a regular file: never opened
        return placeholder_png(str(err), size)
    if source is None or source.kind == "image":
        return thumbnail_png(path, size)
    try:
        img = load_item(dataclasses.replace(source, path=str(path)), max_side=2 * size)
    except ImageError as err:  # VideoError too
        return placeholder_png(str(err), size)
    return png(fit_box(img, size))


def boxed_parent_inside(root: Path, rel: str, source: Source, size: int) -> bytes:
    """PNG of the image (or frame) an object belongs to, its box drawn, fitted to `size` x `size`;
    opened only when `rel` is a regular file inside `root` (else a placeholder)."""
    try:
        path = resolve_inside(Path(root), rel)
        img = parent_image(dataclasses.replace(source, path=str(path)))
    except (PermissionError, ImageError) as err:
        return placeholder_png(str(err), size)
    scale = min(1.0, size / max(img.size))
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR)
    if source.box is not None:
        x0, y0, x1, y1 = (float(v) * scale for v in source.box)
        width = max(2, round(max(img.size) / 150))  # visible on a large view, not a smear on a small one
        ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), outline=(255, 40, 40), width=width)
    return png(img)


def fit_box(img: Image.Image, size: int) -> Image.Image:
    """`img` scaled to fit `size` x `size`: integer nearest-neighbour upscale, bilinear downscale."""
    longest = max(img.size)
    if longest < size:
        factor = max(1, size // longest)
        if factor > 1:
            img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
        return img
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.BILINEAR)
    return img


def placeholder_png(reason: str, size: int = THUMB_SIZE) -> bytes:
    """A grey square with the first words of `reason`, shown in place of an unreadable image."""
    img = Image.new("RGB", (size, size), (200, 200, 200))
    ImageDraw.Draw(img).multiline_text((4, size // 2 - 10), _wrap(reason, 14), fill=(60, 60, 60))
    return png(img)


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join((lines + [line])[:3])


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
