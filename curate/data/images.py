"""Safe image decoding: every supported file becomes an RGB PIL image, or a clear reason why not.

Handles EXIF orientation, CMYK, 16-bit, palette + alpha (composited on white), greyscale,
truncated and non-image files. Very large JPEGs are decoded at reduced scale (`draft`), so a
20000x20000 photo costs a fraction of its full decode. Safe to call from several threads: large
decodes share one memory budget (`DECODE_MEMORY`), so a thread pool meeting several huge images
decodes them one after another instead of all at once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# The pixel cap, configurable ($CURATE_MAX_PIXELS, `curate ... --max-pixels`). Formats decoded at full
# size (all but JPEG) stop at 250 MP by default: above the largest camera sensors (~200 MP), and such a
# decode already takes ~750 MB as RGB, while a PNG of a few kB can claim 900 MP of zeros (a
# decompression bomb). A JPEG is decoded at reduced scale (`draft`, up to 1/8 per side) and may have
# JPEG_FACTOR times more: 1 gigapixel by default.
MAX_PIXELS_ENV = "CURATE_MAX_PIXELS"
MAX_FULL_DECODE_PIXELS = 250_000_000
JPEG_FACTOR = 4
MAX_PIXELS = MAX_FULL_DECODE_PIXELS * JPEG_FACTOR
# A query (an upload to the app or `curate serve`) is embedded at the encoder's size: 40 MP is a 50 MP phone
# photo's JPEG reduced in the DCT domain, or a 7,000 x 5,700 PNG. A 250 MP PNG query made one search decode
# take ~950 MB (issue 30); a scan still takes what MAX_FULL_DECODE_PIXELS allows.
QUERY_MAX_PIXELS = 40_000_000

# Pillow's own bomb guard (~179 MP) would reject legitimate large photos. Pillow still raises
# beyond 2 * MAX_PIXELS while opening; `_check_size` refuses everything beyond MAX_PIXELS itself,
# because turning Pillow's warning into an error needs `warnings.catch_warnings`, which is not
# thread-safe (scans decode on a thread pool).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Pillow allocates pixels in 16 MB blocks by default. glibc serves blocks that size from its heaps (its
# mmap threshold rises to 32 MB after the first large free), and a heap keeps freed memory: a 675 MB
# decode on one thread and then one on another held 1.9 GB. 64 MB blocks are always mmapped, so a
# huge image's memory goes back to the system when it is freed (three 225 MP PNGs decoded on a
# thread pool: peak 1.0 GB instead of 1.9 GB). Small images are unaffected: a block is never larger
# than the image.
Image.core.set_block_size(64 * 2**20)

ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the stored pixels upright (orientation 1 is upright).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
# Modes Pillow resizes with a real filter (palette and bilevel only get nearest neighbour, 16-bit none).
_RESIZABLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


class MemoryBudget:
    """Bytes that concurrent decodes may hold at once. A decode waits while the others hold too much
    to add its own; one larger than the whole budget still runs, alone. Small decodes (under
    `SMALL`) skip the bookkeeping: they cannot add up to much on a few threads."""

    SMALL = 16 * 2**20

    def __init__(self, limit: int):
        self.limit, self.used, self.peak = int(limit), 0, 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int):
        if nbytes < self.SMALL:
            yield
            return
        with self._changed:
            self._changed.wait_for(lambda: self.used == 0 or self.used + nbytes <= self.limit)
            self.used += nbytes
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._changed:
                self.used -= nbytes
                self._changed.notify_all()


def env_int(name: str, default: int) -> int:
    """A positive integer setting from the environment (a clear error for anything else)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"${name} must be a positive number, not {text!r}")
    return value


def pixel_limit(image_format: str | None) -> int:
    """The most pixels an image of `image_format` may have ($CURATE_MAX_PIXELS, x JPEG_FACTOR for JPEG)."""
    cap = env_int(MAX_PIXELS_ENV, MAX_FULL_DECODE_PIXELS)
    return cap * JPEG_FACTOR if image_format == "JPEG" else cap


# One budget per process, as the thread pools that decode (scan, quality checks, decode cache) share
# the process's memory: 1 GiB unless CURATE_DECODE_MEMORY_MB (`curate ... --decode-memory-mb`) says otherwise.
DECODE_MEMORY_ENV = "CURATE_DECODE_MEMORY_MB"
DECODE_MEMORY = MemoryBudget(env_int(DECODE_MEMORY_ENV, 1024) * 2**20)


def decode_bytes(size: tuple[int, int], mode: str) -> int:
    """What decoding an image of `size` in `mode` holds at its peak: the decoded pixels, the RGB copy
    and, for 16-bit and float images, the float64 copy `to_rgb` rescales through."""
    pixels = size[0] * size[1]
    stored = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "I;16": 2, "I;16B": 2, "I;16L": 2,
              "I;16N": 2}.get(mode, 4)
    return pixels * (stored + 3 + (8 if mode in _SIXTEEN_BIT or mode in ("I", "F") else 0))


class ImageError(Exception):
    """An image that cannot be used; `str(err)` is the reason stored in the manifest."""


def is_image_path(path: str | os.PathLike) -> bool:
    """True for a visible file with an image extension (hidden files such as `._x.jpg` are macOS metadata).
    String operations only: the scan asks this of every file name in the tree."""
    name = os.path.basename(os.fspath(path))
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not name.startswith(".")


def load_rgb(path, max_side: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """Decode `path` (a path or a binary file object) to an upright RGB image, optionally downscaled so max(w, h) <= max_side.

    `max_pixels`: a lower pixel cap than the scan's (a query upload: `QUERY_MAX_PIXELS`), checked on the header
    before anything is decoded. Raises ImageError with a short, user-facing reason; never anything else for bad
    file content.
    """
    # Pillow's own guard (raised while opening) must stay above ours, which names the configured cap
    Image.MAX_IMAGE_PIXELS = max(MAX_PIXELS, pixel_limit("JPEG"))
    try:
        with Image.open(path) as img:
            _check_size(img.size, img.format, max_pixels)
            if max_side is not None and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))  # DCT-domain downscale: cheap
            with DECODE_MEMORY.hold(decode_bytes(img.size, img.mode)):
                img.load()
                img = _shrink(upright(img), max_side)
                return to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError("empty file" if _is_empty(path) else decode_failure(err)) from None
    except Exception as err:  # Pillow's plugins raise a zoo of types on bad data; each becomes a reason
        raise ImageError(decode_failure(err)) from None


def decode_failure(err: Exception) -> str:
    """The manifest reason for an exception raised while opening or decoding an image."""
    if isinstance(err, FileNotFoundError):
        return "missing: file not found"
    if isinstance(err, UnidentifiedImageError):
        return "not an image: unrecognised format"
    if isinstance(err, Image.DecompressionBombError):
        return f"too large: more than {pixel_limit('JPEG'):,} pixels"
    if isinstance(err, MemoryError):
        return "too large: out of memory while decoding"
    if isinstance(err, OSError) and err.errno is not None:  # the file system failed, not the data
        return f"unreadable: {err.strerror or _reason(err)}"
    if isinstance(err, OSError) and "truncated" in str(err).lower():
        return f"unreadable: {_reason(err)}"
    if isinstance(err, (OSError, ValueError, SyntaxError, IndexError, TypeError, KeyError, EOFError, struct.error)):
        return f"corrupt: {_reason(err)}"
    log.debug("unexpected decoder failure", exc_info=err)
    return f"corrupt: {type(err).__name__}: {_reason(err)}"


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency becomes white, 16-bit is rescaled to 8-bit."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in _SIXTEEN_BIT or img.mode in ("I", "F"):
        img = Image.fromarray(_to_uint8(np.asarray(img), img.mode), mode="L")
    if img.mode == "La":
        img = img.convert("RGBa")  # Pillow has no La -> RGBA conversion
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit, 32-bit integer or float samples to 0..255 (a fixed scale per mode, not per image)."""
    arr = arr.astype(np.float64)
    hi = float(arr.max()) if arr.size else 0.0
    if mode in _SIXTEEN_BIT:
        scale = 255.0 / 65535.0
    elif mode == "I":  # 32-bit container: 8-bit or 16-bit data as a rule, anything else by its range
        scale = 1.0 if hi <= 255 else 255.0 / 65535.0 if hi <= 65535 else 255.0 / hi
    else:  # "F": 0..1 floats, or anything else by its range
        scale = 255.0 if hi <= 1.0 else 255.0 / hi
    return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)


def orientation(img: Image.Image) -> int:
    """EXIF orientation 1..8 of an opened image; 1 (upright) when absent or unparseable.

    A PNG not yet decoded counts as upright unless its EXIF came before the pixels (then it is in
    `info`): Pillow's `getexif` on a PNG decodes the whole image to look for EXIF after the pixel data,
    which for a 225 MP PNG is 700 MB outside the decode-memory budget, just to read a header.
    """
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block should not cost the picture: treat it as upright
        log.debug("unreadable EXIF in %s", getattr(img, "filename", "image"), exc_info=True)
        return 1
    return value if value in _UPRIGHT else 1


def upright(img: Image.Image) -> Image.Image:
    """The image as displayed: its EXIF orientation applied to the pixels."""
    method = _UPRIGHT.get(orientation(img))
    return img if method is None else img.transpose(method)


def image_size(path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header only."""
    with Image.open(path) as img:
        w, h = img.size
        return (h, w) if orientation(img) in (5, 6, 7, 8) else (w, h)


def fit_square(img: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to `size` and centre-crop: (size, size, 3) uint8."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _check_size(size: tuple[int, int], image_format: str | None = None, query_limit: int | None = None) -> None:
    if query_limit is not None and size[0] * size[1] > query_limit:
        raise ImageError(f"too large for a query: {size[0]}x{size[1]} is more than {query_limit:,} pixels "
                         "(search with a smaller copy)")
    limit = pixel_limit(image_format)
    if size[0] * size[1] > limit:
        raise ImageError(f"too large: {size[0]}x{size[1]} is more than {limit:,} pixels"
                         + ("" if image_format == "JPEG" else f" for a {image_format or 'non-JPEG'} image")
                         + f" (the cap: --max-pixels / ${MAX_PIXELS_ENV})")


def _shrink(img: Image.Image, max_side: int | None) -> Image.Image:
    """Downscale so max(w, h) <= max_side, before the RGB conversion where the mode allows (less memory)."""
    if max_side is None or max(img.size) <= max_side:
        return img
    if img.mode not in _RESIZABLE:
        img = to_rgb(img)
    img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return img


def _is_empty(source) -> bool:
    """True if a path or seekable binary file holds no bytes at all."""
    try:
        if hasattr(source, "seek"):
            return source.seek(0, 2) == 0
        return Path(source).stat().st_size == 0
    except (OSError, ValueError):
        return False


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]
