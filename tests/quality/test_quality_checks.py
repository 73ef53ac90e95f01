"""Image-quality checks on real images: planted problems are flagged, clean photos rarely; the step
writes manifest columns incrementally; rescans keep them; duplicate keepers prefer sharp images."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from curate import storage
from curate.data.scan import scan_folder
from curate.data.images import load_rgb
from curate.quality import (FLAG_COLUMNS, IMAGE_METRICS, METRIC_COLUMNS, QualityConfig, flags, groups_table, measure,
                            measure_file)
from curate.quality.checks import ANALYSIS_SIDE
from curate.steps import quality as quality_step
from curate.steps.dedup import dedup
from curate.steps.quality import quality, saved_config
from curate.steps.scan import scan

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _darken(img): return img.point(lambda v: int(v * 0.3))
def _brighten(img): return img.point(lambda v: int(v * 0.3 + 0.7 * 255))
def _blur(img): return img.filter(ImageFilter.GaussianBlur(1.5))
def _grey(img): return img.convert("L").convert("RGB")  # greyscale content in an RGB JPEG
def _strip(img): return img.resize((128, 32))  # 4:1
def _tiny(img): return img.resize((8, 8))
def _huge(img): return img.resize((160, 160), Image.Resampling.LANCZOS)
def _flat(img): return Image.new("RGB", img.size, tuple(int(c) for c in np.asarray(img).reshape(-1, 3).mean(0)))


# planted problem -> (how it is made, the flag that must fire)
PLANTED = {"dark": (_darken, "dark"), "bright": (_brighten, "bright"), "blurred": (_blur, "blurry"),
           "grey": (_grey, "grayscale"), "strip": (_strip, "odd_aspect_ratio"), "tiny": (_tiny, "odd_size"),
           "huge": (_huge, "odd_size"), "flat": (_flat, "low_information")}


@pytest.fixture(scope="module")
def planted(tmp_path_factory, bundled_images) -> Path:
    """200 clean bundled photos (clean/) and, made from 10 other photos each, every PLANTED problem (<kind>/)."""
    root = tmp_path_factory.mktemp("quality") / "images"
    sources = [f for cls in CLASSES for f in sorted((bundled_images / cls).glob("*.jpg"))[:28]]
    clean = [f for i, f in enumerate(sources) if i % 28 < 20]
    rest = [f for i, f in enumerate(sources) if i % 28 >= 20]  # 80 others, never in clean/
    (root / "clean").mkdir(parents=True)
    for f in clean:
        shutil.copy2(f, root / "clean" / f"{f.parent.name}_{f.name}")
    for k, (kind, (make, _)) in enumerate(PLANTED.items()):
        (root / kind).mkdir()
        for f in rest[k * 10:(k + 1) * 10]:
            with Image.open(f) as img:
                make(img.convert("RGB")).save(root / kind / f"{f.parent.name}_{f.name}", quality=95)
    return root


@pytest.fixture(scope="module")
def checked(planted, tmp_path_factory) -> pd.DataFrame:
    ws, _ = scan(planted, tmp_path_factory.mktemp("ws") / "ws")
    return quality(ws)


def test_every_planted_problem_fires_its_flag(checked):
    kind = checked["path"].str.split("/").str[0]
    for name, (_, flag) in PLANTED.items():
        hit = checked.loc[kind == name, flag].astype(bool)
        assert hit.mean() >= 0.9, f"{flag} caught only {hit.mean():.0%} of planted {name} images"


def test_clean_photos_are_rarely_flagged(checked):
    clean = checked[checked["path"].str.startswith("clean/")]
    assert len(clean) == 200
    for flag in FLAG_COLUMNS:
        rate = clean[flag].astype(bool).mean()
        # CIFAR-10 holds a few genuinely greyscale photos (~1.3% of its train set)
        assert rate <= (0.03 if flag == "grayscale" else 0.02), f"{flag} fires on {rate:.1%} of clean photos"
    assert clean[list(FLAG_COLUMNS)].any(axis=1).mean() <= 0.05


def test_quality_writes_metric_and_flag_columns_into_the_manifest(checked, planted):
    ws_manifest = checked
    for col in METRIC_COLUMNS:
        assert ws_manifest[col].notna().all(), col
    for col in FLAG_COLUMNS:
        assert str(ws_manifest[col].dtype) == "boolean", col
    assert ws_manifest["aspect_ratio"].min() >= 1.0
    # flags re-derived from the stored metrics equal the stored flags: the app can move thresholds live
    pd.testing.assert_frame_equal(flags(ws_manifest), ws_manifest[list(FLAG_COLUMNS)])


def test_moving_a_threshold_moves_only_its_flag(checked):
    loose = flags(checked, QualityConfig(blurry=0.0))
    strict = flags(checked, QualityConfig(blurry=10.0))
    assert not loose["blurry"].any() and strict["blurry"].all()
    pd.testing.assert_frame_equal(loose.drop(columns="blurry"), flags(checked).drop(columns="blurry"))


def test_flags_are_missing_where_metrics_are():
    frame = pd.DataFrame({c: [np.nan, 0.5] for c in METRIC_COLUMNS})
    out = flags(frame)
    assert out.iloc[0].isna().all() and out.iloc[1].notna().all()


def test_odd_formats_and_tiny_images_are_measured(tmp_path, bundled_images):
    with Image.open(bundled_images / "cat" / "4800.jpg") as photo:
        photo = photo.convert("RGB")
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    cases = {"grey.png": photo.convert("L"), "rgba.png": rgba, "palette.png": photo.convert("P"),
             "one.png": photo.resize((1, 1)), "two.png": photo.resize((2, 1)), "line.png": photo.resize((64, 1))}
    for name, img in cases.items():
        img.save(tmp_path / name)
        values = measure_file(tmp_path / name)
        assert values.shape == (5,) and np.isfinite(values).all(), name
    grey = measure_file(tmp_path / "grey.png")
    assert grey[4] == 0.0  # channel spread of a greyscale image


def test_step_is_incremental_resumable_and_survives_rescans(tmp_path, bundled_images, sample_copier, monkeypatch):
    images = sample_copier(bundled_images, tmp_path / "images", ("cat", "dog", "ship"), 20)
    ws, _ = scan(images, tmp_path / "ws")
    calls = []
    real = quality_step.metrics_and_fingerprint

    def counting(path):
        calls.append(path)
        if len(calls) == 25 and fail_once:
            raise RuntimeError("interrupted")
        return real(path)

    monkeypatch.setattr(quality_step, "metrics_and_fingerprint", counting)
    fail_once = True
    with pytest.raises(RuntimeError):  # interrupted in the second chunk: the first one is saved
        quality(ws, chunk=20, workers=1)
    assert ws.manifest()["entropy"].notna().sum() == 20
    fail_once, calls[:] = False, []
    quality(ws, chunk=20)
    assert len(calls) == 40  # the 20 already measured are not measured again
    calls.clear()
    before = quality(ws, QualityConfig(dark=0.9))
    assert calls == [] and before["dark"].sum() > 0  # nothing measured, flags follow the new thresholds
    assert saved_config(ws) == QualityConfig(dark=0.9)
    assert storage.read_json(ws.path / "quality.json")["flagged"]["dark"] == int(before["dark"].sum())

    changed = images / "cat" / sorted(p.name for p in (images / "cat").iterdir())[0]
    _blur(Image.open(changed).convert("RGB")).save(changed, quality=95)
    manifest, summary = scan_folder(ws.root, ws.manifest())
    assert summary.changed == 1
    row = manifest["path"] == f"cat/{changed.name}"
    assert manifest.loc[row, "sharpness"].isna().all() and manifest.loc[row, "blurry"].isna().all()
    kept = manifest.loc[~row]
    pd.testing.assert_frame_equal(kept[["sharpness", "dark"]], before.loc[~row, ["sharpness", "dark"]],
                                  check_dtype=False)
    ws.save_manifest(manifest)
    after = quality(ws)
    assert len(calls) == 1 and after.loc[row, "blurry"].all()


def test_keeper_is_largest_then_sharpest():
    ids = np.array([5, 6, 7, 8])
    pixels = np.array([1024, 1024, 1024, 4096])
    sharp = np.array([0.4, 0.7, np.nan, 0.1])
    table = groups_table([], [[0, 1, 2]], ids, pixels, sharp).set_index("id")
    assert table["keeper"].to_dict() == {5: False, 6: True, 7: False}
    table = groups_table([], [[0, 1, 3]], ids, pixels, sharp).set_index("id")
    assert table.loc[8, "keeper"]  # size first: a larger blurred image beats a sharp small one
    assert list(groups_table([], [[0, 1]], ids, pixels).keeper) == [True, False]  # no sharpness: lowest row


def test_dedup_keeps_the_sharp_copy(tmp_path, bundled_images):
    images = tmp_path / "images"
    images.mkdir()
    with Image.open(bundled_images / "dog" / sorted(p.name for p in (bundled_images / "dog").iterdir())[0]) as img:
        img = img.convert("RGB")
    _blur(img).save(images / "a_blurred.png")  # row 0: would be the keeper on size and row order alone
    img.save(images / "b_sharp.png")
    for i, f in enumerate(sorted((bundled_images / "cat").glob("*.jpg"))[:4]):
        shutil.copy(f, images / f"other{i}.jpg")
    ws, _ = scan(images, tmp_path / "ws")
    vectors = np.eye(6, 8, dtype=np.float32)
    vectors[1] = vectors[0]  # the two copies embed identically
    storage.write_npy(ws.embeddings_file, vectors)
    table = dedup(ws).set_index("id")  # measures sharpness (and the fingerprints) first
    assert "sharpness" in ws.manifest().columns
    assert list(table.columns) == ["group", "kind", "keeper"] and table.loc[1, "keeper"] and not table.loc[0, "keeper"]


@pytest.mark.shared
def test_blur_darkness_and_greyscale_on_real_photos(caltech_images):
    photos = sorted(caltech_images.rglob("*.jpg"))[::20][:100]
    rows, kinds, grey_files = [], [], []
    for f in photos:
        img = load_rgb(f, max_side=ANALYSIS_SIDE)  # what measure_file sees
        with Image.open(f) as raw:
            grey_files.append(raw.mode == "L")
        for kind, make in (("clean", None), ("blurred", lambda im: im.filter(ImageFilter.GaussianBlur(3))),
                           ("dark", _darken), ("bright", _brighten)):
            rows.append(measure(np.asarray(img if make is None else make(img))))
            kinds.append(kind)
    frame = pd.DataFrame(rows, columns=IMAGE_METRICS).assign(aspect_ratio=1.0, size_ratio=1.0)
    out, kinds = flags(frame), np.array(kinds)
    for kind, flag in (("blurred", "blurry"), ("dark", "dark"), ("bright", "bright")):
        assert out.loc[kinds == kind, flag].mean() >= 0.9, kind
        assert out.loc[kinds == "clean", flag].mean() <= 0.03, flag
    grey = out.loc[kinds == "clean", "grayscale"].to_numpy(bool)
    assert sum(grey_files) >= 3 and grey[grey_files].all()  # Caltech's greyscale (mode L) photos


def test_a_rerun_without_thresholds_keeps_the_ones_the_user_set(built_workspace_copy):
    """`curate run` calls the checks without thresholds: the user's from `curate quality --blurry ...` stay."""
    ws = built_workspace_copy
    strict = QualityConfig(blurry=QualityConfig().blurry * 3)
    flagged = int(quality(ws, strict)["blurry"].sum())
    again = quality(ws, None)
    assert saved_config(ws) == strict and int(again["blurry"].sum()) == flagged
