"""EXIF as manifest columns (issue 30 part 3): real photos with EXIF written by Pillow (camera, capture time,
exposure, GPS north-east and south-west, orientation, a broken block), scanned; the columns filter with --where."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from curate.cli import main
from curate.data.exif import read_exif
from curate.data.where import where_mask
from curate.workspace import Workspace
from tests.conftest import SHARED

COCO = SHARED / "coco128-detect" / "images" / "train2017"


def _photo(bundled_images: Path, i: int) -> Image.Image:
    """A real photo (a COCO one when ../shared is here, else a bundled CIFAR image), as RGB."""
    files = sorted(COCO.glob("*.jpg")) if COCO.is_dir() else sorted(bundled_images.rglob("*.jpg"))
    with Image.open(files[i]) as img:
        return img.convert("RGB")


def _exif(make: str, model: str, taken: str, lat=None, lon=None, orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = make, model, orientation
    photo = exif.get_ifd(0x8769)
    photo[0x9003] = taken
    photo[0x829A], photo[0x829D], photo[0x8827], photo[0x920A] = 1 / 250, 2.8, 400, 23.0
    photo[0xA434] = "XF23mmF2"
    if lat is not None:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = lat[0], lat[1]
        gps[3], gps[4] = lon[0], lon[1]
        gps[5], gps[6] = 0, 35.5
    return exif


@pytest.fixture
def exif_folder(tmp_path, bundled_images) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    paris = _exif("FUJIFILM", "X100V", "2024:06:15 10:30:00", ("N", (48.0, 51.0, 24.0)), ("E", (2.0, 21.0, 3.0)),
                  orientation=6)
    _photo(bundled_images, 0).save(root / "paris.jpg", exif=paris)
    lima = _exif("Apple", "iPhone 15", "2023:12:24 18:00:00", ("S", (12.0, 2.0, 0.0)), ("W", (77.0, 1.0, 30.0)))
    _photo(bundled_images, 1).save(root / "lima.jpg", exif=lima)
    _photo(bundled_images, 2).save(root / "plain.jpg")
    broken = _photo(bundled_images, 3)
    broken.save(root / "broken.jpg", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff garbage")
    zeros = _exif("Canon", "EOS R5", "0000:00:00 00:00:00")  # a camera whose clock was never set
    _photo(bundled_images, 4).save(root / "zeros.jpg", exif=zeros)
    return root


def test_exif_fields_become_columns_and_broken_exif_loses_only_those(exif_folder, tmp_path):
    assert main(["scan", str(exif_folder), "-w", str(tmp_path / "ws")]) == 0
    m = Workspace(tmp_path / "ws").manifest().set_index("path")
    assert (m["status"] == "ok").all()  # a broken EXIF block never costs the image
    paris, lima = m.loc["paris.jpg"], m.loc["lima.jpg"]
    assert (paris["camera_make"], paris["camera_model"], paris["lens"]) == ("FUJIFILM", "X100V", "XF23mmF2")
    assert paris["captured"] == pd.Timestamp(datetime(2024, 6, 15, 10, 30))
    assert paris["exposure_s"] == pytest.approx(0.004) and paris["f_number"] == pytest.approx(2.8)
    assert (paris["iso"], paris["focal_mm"], paris["orientation"]) == (400, 23.0, 6)
    assert paris["gps_lat"] == pytest.approx(48.856667, abs=1e-5) and paris["gps_lon"] == pytest.approx(2.350833, abs=1e-5)
    assert paris["gps_alt_m"] == pytest.approx(35.5)
    with Image.open(exif_folder / "paris.jpg") as img:  # orientation 6: stored landscape, shown portrait
        assert (paris["width"], paris["height"]) == (img.height, img.width)
    assert lima["gps_lat"] == pytest.approx(-12.033333, abs=1e-5) and lima["gps_lon"] < -77  # south and west
    for name in ("plain.jpg", "broken.jpg"):
        assert m.loc[name, ["camera_make", "captured", "gps_lat"]].isna().all()
    assert m.loc["zeros.jpg", "camera_model"] == "EOS R5" and pd.isna(m.loc["zeros.jpg", "captured"])
    assert str(m["captured"].dtype) == "datetime64[ns]" and str(m["camera_make"].dtype) == "string"

    manifest = Workspace(tmp_path / "ws").manifest()
    chosen = manifest["path"][where_mask(manifest, "camera_model = 'X100V' AND captured >= '2024-06-01'")]
    assert chosen.tolist() == ["paris.jpg"]
    south = manifest["path"][where_mask(manifest, "gps_lat < 0")]
    assert south.tolist() == ["lima.jpg"]

    assert main(["scan", str(exif_folder), "-w", str(tmp_path / "ws")]) == 0  # a rescan reads nothing: kept
    pd.testing.assert_frame_equal(Workspace(tmp_path / "ws").manifest(), manifest)


def test_a_folder_without_exif_gets_no_exif_columns(small_images, tmp_path):
    assert main(["scan", str(small_images), "-w", str(tmp_path / "ws")]) == 0
    assert "captured" not in Workspace(tmp_path / "ws").manifest().columns


def test_read_exif_of_an_image_without_it_is_empty(bundled_images):
    with Image.open(next(bundled_images.rglob("*.jpg"))) as img:
        assert read_exif(img) == {}
