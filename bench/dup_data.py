"""The planted near duplicates of bench/duplicates.py: the edits, and the flat folders built from them.

Every edit maps (original RGB image, its file bytes, rng) -> the bytes of the copy (JPEG quality 95
unless the edit is about the encoding). Three groups of edit types:

- STANDARD: what every tool is asked to find (issue 12's list);
- CROPS: heavier crops, the edits of curate's `--crops` mode, plus the real Faces crops;
- FLIPS: a left-right mirror, the edit of curate's `--flips` mode.

Each copy is planted beside its original; each original has at most one copy, so a planted pair
is (copy, original) and nothing else among the planted images is a duplicate by construction.
"""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

FACES = "real crop (Faces_easy)"


def jpeg(img: Image.Image, q: int = 95) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return buf.getvalue()


def crop_area(img: Image.Image, frac: float, rng: np.random.Generator) -> Image.Image:
    """A crop keeping `frac` of the area (same aspect ratio) at a random position."""
    w, h = img.size
    side = frac ** 0.5
    cw, ch = max(1, round(w * side)), max(1, round(h * side))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def translate(img: Image.Image, frac: float, rng: np.random.Generator) -> Image.Image:
    """Content shifted by `frac` of each side (down-right or up-left), the uncovered strips filled
    with the edge pixels; the size stays."""
    w, h = img.size
    dx, dy = max(1, round(w * frac)), max(1, round(h * frac))
    a = np.asarray(img)
    if rng.random() < 0.5:
        out = np.pad(a, ((dy, 0), (dx, 0), (0, 0)), mode="edge")[:h, :w]
    else:
        out = np.pad(a, ((0, dy), (0, dx), (0, 0)), mode="edge")[dy:, dx:]
    return Image.fromarray(np.ascontiguousarray(out))


def gamma(img: Image.Image, g: float) -> Image.Image:
    return img.point(lambda v: int(255 * (v / 255) ** g + 0.5))


def noise(img: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(img).astype(np.float32) + rng.normal(0.0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def half(img: Image.Image) -> tuple[int, int]:
    return max(1, img.width // 2), max(1, img.height // 2)


STANDARD = {
    "exact copy": lambda im, raw, r: raw,
    "jpeg q20": lambda im, raw, r: jpeg(im, 20),
    "resize 0.5x and back": lambda im, raw, r: jpeg(im.resize(half(im), Image.Resampling.BILINEAR)
                                                    .resize(im.size, Image.Resampling.BILINEAR)),
    "downscale 0.5x": lambda im, raw, r: jpeg(im.resize(half(im), Image.Resampling.LANCZOS)),  # stored smaller
    "upscale 2x": lambda im, raw, r: jpeg(im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC)),
    "brightness/contrast": lambda im, raw, r: jpeg(ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.25))
                                                   .enhance(0.8)),
    "gamma 0.7": lambda im, raw, r: jpeg(gamma(im, 0.7)),
    "saturation 0.3": lambda im, raw, r: jpeg(ImageEnhance.Color(im).enhance(0.3)),
    "blur": lambda im, raw, r: jpeg(im.filter(ImageFilter.GaussianBlur(max(0.6, im.width / 300)))),
    "sharpen": lambda im, raw, r: jpeg(im.filter(ImageFilter.UnsharpMask(2, 150, 3))),
    "noise sigma 10": lambda im, raw, r: jpeg(noise(im, 10.0, r)),
    "translate 5%": lambda im, raw, r: jpeg(translate(im, 0.05, r)),
    "crop 90% area": lambda im, raw, r: jpeg(crop_area(im, 0.9, r)),
}
CROPS = {
    "crop 70% area": lambda im, raw, r: jpeg(crop_area(im, 0.7, r)),
    "crop 50% area": lambda im, raw, r: jpeg(crop_area(im, 0.5, r)),
}
FLIPS = {"mirror": lambda im, raw, r: jpeg(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT))}
EDITS = {**STANDARD, **CROPS, **FLIPS}


def faces_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(Faces/image_N.jpg, Faces_easy/image_N.jpg): one photo at two crops (see the folder's SOURCE.md)."""
    return [(f, root / "Faces_easy" / f.name) for f in sorted((root / "Faces").glob("*.jpg"))
            if (root / "Faces_easy" / f.name).exists()]


def build_folder(sources: list[Path], n_clean: int, per_kind: int, out: Path, seed: int,
                 faces: list[tuple[Path, Path]] = ()) -> dict:
    """Write `out` flat: n_clean originals, `per_kind` edited copies of distinct originals per edit in
    EDITS, and both files of each `faces` pair. Anonymous shuffled names (img_NNNNNN.jpg).

    Returns the truth {file name: (kind, original's file name or None, source file)}; kind is
    "original" for the images that are not planted copies; a synthetic copy's source is its original's.
    """
    rng = np.random.default_rng(seed)
    if n_clean < per_kind * len(EDITS):
        raise ValueError(f"{per_kind} copies of each of {len(EDITS)} edits need {per_kind * len(EDITS)} distinct "
                         f"originals, more than --n-clean {n_clean}")
    if len(sources) < n_clean:
        raise ValueError(f"only {len(sources)} source images for --n-clean {n_clean}")
    originals = [sources[i] for i in rng.permutation(len(sources))[:n_clean]]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    names = iter(rng.permutation(n_clean + per_kind * len(EDITS) + 2 * len(faces)))
    truth: dict[str, tuple[str, str | None, str]] = {}

    def put(data: bytes, kind: str, original: str | None, source: Path) -> str:
        name = f"img_{next(names):06d}.jpg"
        (out / name).write_bytes(data)
        truth[name] = (kind, original, str(source))
        return name

    kept = [put(path.read_bytes(), "original", None, path) for path in originals]
    chosen = rng.permutation(n_clean)[:per_kind * len(EDITS)].reshape(len(EDITS), per_kind)
    for (kind, edit), rows in zip(EDITS.items(), chosen):
        for r in rows:
            raw = originals[r].read_bytes()
            put(edit(Image.open(io.BytesIO(raw)).convert("RGB"), raw, rng), kind, kept[r], originals[r])
    for wide, tight in faces:
        put(tight.read_bytes(), FACES, put(wide.read_bytes(), "original", None, wide), tight)
    return truth
