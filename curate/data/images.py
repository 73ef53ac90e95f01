"""Safe image decoding: every supported file becomes an RGB PIL image, or a clear reason why not.

Handles EXIF orientation, CMYK, 16-bit, palette + alpha (composited on white), greyscale,
truncated and non-image files. Very large JPEGs are decoded at reduced scale (`draft`), so a
20000x20000 photo costs a fraction of its full decode.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
MAX_PIXELS = 1_000_000_000  # refuse beyond 1 gigapixel: more is a decompression bomb, not a photo

# Pillow's own bomb guard (~179 MP) would reject legitimate large photos; ours is MAX_PIXELS.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(Exception):
    """An image that cannot be used; `str(err)` is the reason stored in the manifest."""


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def load_rgb(path, max_side: int | None = None) -> Image.Image:
    """Decode `path` (a path or a binary file object) to an upright RGB image, optionally downscaled so max(w, h) <= max_side.

    Raises ImageError with a short, user-facing reason.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if max_side is not None and img.format == "JPEG":
                    img.draft("RGB", (max_side, max_side))  # DCT-domain downscale: cheap
                img.load()
                img = ImageOps.exif_transpose(img)
                img = to_rgb(img)
    except FileNotFoundError:
        raise ImageError("missing: file not found") from None
    except UnidentifiedImageError:
        raise ImageError("not an image: unrecognised format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"too large: more than {MAX_PIXELS:,} pixels") from None
    except OSError as err:
        raise ImageError(f"unreadable: {_reason(err)}") from None
    except (ValueError, SyntaxError, IndexError, TypeError) as err:  # Pillow plugins raise these on bad data
        raise ImageError(f"corrupt: {_reason(err)}") from None
    if max_side is not None and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency becomes white, 16-bit is rescaled to 8-bit."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        scale = 255.0 / (65535.0 if hi > 255 else max(hi, 1.0)) if img.mode != "F" else 255.0 / max(hi, 1e-12)
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def image_size(path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header only."""
    with Image.open(path) as img:
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def fit_square(img: Image.Image, size: int) -> np.ndarray:
    """Resize the shorter side to `size` and centre-crop: (size, size, 3) uint8."""
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _reason(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]
