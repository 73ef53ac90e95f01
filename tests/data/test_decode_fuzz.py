"""Fuzzing the decode path (hypothesis): real images of every format curate reads, mutated (bytes
flipped, cut short, spliced, header fields rewritten), go through the scan's `inspect_file` and
`load_rgb`. Whatever the bytes, the answer is an RGB image within the size limits or a reason:
never another exception, never a hang, never a decode beyond the pixel limits."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (requirements-dev.txt)")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from curate.data.images import MAX_FULL_DECODE_PIXELS, MAX_PIXELS, ImageError, load_rgb  # noqa: E402
from curate.data.scan import inspect_file  # noqa: E402

FORMATS = {"JPEG": {}, "PNG": {}, "WEBP": {"quality": 80}, "BMP": {}, "TIFF": {}, "GIF": {}}


def seeds(photo: np.ndarray) -> dict[str, bytes]:
    """The same real picture saved in every format curate reads (and in a few modes)."""
    img = Image.fromarray(photo)
    out = {}
    for fmt, options in FORMATS.items():
        buf = io.BytesIO()
        (img.convert("P") if fmt == "GIF" else img).save(buf, fmt, **options)
        out[fmt] = buf.getvalue()
    for mode in ("L", "RGBA", "I;16", "CMYK"):
        buf = io.BytesIO()
        (img.convert("L").convert(mode) if mode == "I;16" else img.convert(mode)).save(
            buf, "TIFF" if mode in ("I;16", "CMYK") else "PNG")
        out[f"PNG-{mode}"] = buf.getvalue()
    return out


@pytest.fixture(scope="module")
def seed_files(bundled_images):
    photo = np.asarray(Image.open(sorted(bundled_images.glob("*/*.jpg"))[0]).convert("RGB").resize((48, 40)))
    return seeds(photo)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: flip a byte, cut the file, insert bytes, or write a
    big-endian 32-bit number (header fields such as a PNG's width)."""
    buf = bytearray(data)
    for kind, pos, value in ops:
        if not buf:
            break
        at = pos % len(buf)
        if kind == "flip":
            buf[at] ^= (value % 255) + 1
        elif kind == "cut":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = bytes([value % 256]) * (1 + value % 64)
        else:  # "u32"
            buf[at:at + 4] = struct.pack(">I", value % 2**32)
    return bytes(buf)


def check(data: bytes, tmp_path) -> None:
    try:
        img = load_rgb(io.BytesIO(data), max_side=64)
    except ImageError as err:
        assert str(err), "a reason is a non-empty message"
    else:
        assert img.mode == "RGB" and max(img.size) <= 64 and min(img.size) >= 1
    f = tmp_path / "x.img"
    f.write_bytes(data)
    row = inspect_file(f)  # never raises
    assert row["status"] == "ok" or isinstance(row["status"], str) and row["status"]
    if row["status"] == "ok":
        assert row["width"] * row["height"] <= MAX_PIXELS


ops = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "u32"]), st.integers(0, 10_000),
                         st.integers(0, 2**32 - 1)), min_size=1, max_size=6)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(sorted(FORMATS) + ["PNG-L", "PNG-RGBA", "PNG-I;16", "PNG-CMYK"]), edits=ops)
def test_mutated_images_decode_or_get_a_reason(seed_files, tmp_path, fmt, edits):
    check(mutate(seed_files[fmt], edits), tmp_path)


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(0, 2**31 - 1), height=st.integers(0, 2**31 - 1), payload=st.binary(max_size=200))
def test_png_headers_that_lie_about_their_size_are_refused_not_decoded(tmp_path, width, height, payload):
    """Any claimed size over whatever bytes: beyond the limit a reason, never a giant allocation."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b""))
    if width * height > MAX_FULL_DECODE_PIXELS:
        with pytest.raises(ImageError):
            load_rgb(io.BytesIO(data), max_side=64)
    check(data, tmp_path)
