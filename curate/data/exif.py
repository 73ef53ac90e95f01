"""EXIF facts as manifest columns: capture time, camera, lens, GPS, orientation, exposure.

Read from the header the scan opens anyway (Pillow's `getexif`, no pixels), one dict per image holding only
the fields the file has. A broken EXIF block loses those fields, never the image. `captured` is the camera's
own clock (DateTimeOriginal, else DateTime), without a time zone, as cameras write it. `orientation` is the
raw EXIF value 1-8; `width`/`height` are already upright.
"""
from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd
from PIL import Image

log = logging.getLogger(__name__)

# column -> pandas dtype, in the manifest's column order
EXIF_COLUMNS = {"captured": "datetime64[ns]", "camera_make": "string", "camera_model": "string", "lens": "string",
                "orientation": "Int64", "exposure_s": "float64", "f_number": "float64", "iso": "Int64",
                "focal_mm": "float64", "gps_lat": "float64", "gps_lon": "float64", "gps_alt_m": "float64"}

_BASE = {0x010F: "camera_make", 0x0110: "camera_model", 0x0112: "orientation"}
_DATETIME, _DATETIME_ORIGINAL = 0x0132, 0x9003
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_PHOTO = {0x829A: "exposure_s", 0x829D: "f_number", 0x8827: "iso", 0x920A: "focal_mm", 0xA434: "lens"}


def read_exif(img: Image.Image) -> dict:
    """The EXIF_COLUMNS fields `img` (opened, not necessarily decoded) carries; {} without EXIF."""
    if img.format == "PNG" and "exif" not in img.info:  # getexif would decode a whole PNG to look (images.py)
        return {}
    try:
        exif = img.getexif()
    except Exception:  # a broken block: the image is still an image
        log.debug("unreadable EXIF in %s", getattr(img, "filename", "image"), exc_info=True)
        return {}
    out: dict = {}
    for tag, name in _BASE.items():
        _put(out, name, exif.get(tag))
    photo = _ifd(exif, _EXIF_IFD)
    for tag, name in _PHOTO.items():
        _put(out, name, photo.get(tag))
    _put(out, "captured", photo.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME))
    out.update(gps(_ifd(exif, _GPS_IFD)))
    return out


def _ifd(exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except Exception:
        return {}


def _put(out: dict, name: str, value) -> None:
    """Store `value` as column `name`'s type, or nothing when it is missing or does not parse."""
    if value is None:
        return
    try:
        if name == "captured":
            out[name] = parse_datetime(value)
        elif EXIF_COLUMNS[name] == "string":
            text = (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip("\0 ").strip()
            if text:
                out[name] = text[:200]
        elif EXIF_COLUMNS[name] == "Int64":
            number = int(value[0] if isinstance(value, tuple) else value)
            if name != "orientation" or 1 <= number <= 8:  # an orientation outside 1-8 means nothing
                out[name] = number
        else:
            number = float(value)
            if number == number and abs(number) != float("inf"):
                out[name] = number
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        pass


def parse_datetime(value) -> datetime:
    """EXIF's 'YYYY:MM:DD HH:MM:SS' (a ValueError for zeros, blanks or anything else)."""
    text = (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).strip("\0 ").strip()
    return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")


def gps(ifd: dict) -> dict:
    """gps_lat / gps_lon (degrees, south and west negative) and gps_alt_m from a GPS IFD; {} when incomplete."""
    out = {}
    try:
        for ref_tag, value_tag, name, negative in ((1, 2, "gps_lat", "S"), (3, 4, "gps_lon", "W")):
            if value_tag in ifd:
                d, m, s = (float(v) for v in ifd[value_tag])
                sign = -1.0 if str(ifd.get(ref_tag, "")).strip("\0 ").upper() == negative else 1.0
                degrees = sign * (d + m / 60 + s / 3600)
                limit = 90 if name == "gps_lat" else 180
                if -limit <= degrees <= limit:
                    out[name] = degrees
        if 6 in ifd:
            below = ifd.get(5) in (1, b"\x01")
            out["gps_alt_m"] = -float(ifd[6]) if below else float(ifd[6])
    except (TypeError, ValueError, ZeroDivisionError):
        return {}
    return out


def exif_frame(rows: list[dict]) -> pd.DataFrame:
    """The EXIF columns of `rows` (missing: NA / NaT), with their dtypes."""
    frame = pd.DataFrame([{c: r.get(c) for c in EXIF_COLUMNS} for r in rows], columns=list(EXIF_COLUMNS))
    return frame.astype(EXIF_COLUMNS)
