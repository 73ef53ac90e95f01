"""Near duplicates from pixel fingerprints and embeddings: each edit type found on real images,
the calibration's expected precision, recalibration from marked pairs, and grouping."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curate import storage
from curate.quality.alignment import aligned_similarity, pixel_similarity
from curate.quality.calibration import calibrate, threshold_from_marks
from curate.quality.duplicates import groups_from_pairs
from curate.quality.fingerprint import dct_codes, mirror_codes, thumbnail
from curate.quality.pairs import PairConfig
from curate.steps.dedup import dedup, mark_pairs, read_marks, read_pairs, review_pairs
from curate.steps.scan import scan
from fixtures.edits import HEAVY, LIGHT, MIRROR, jpeg


def plant(originals: list, folder, edits: dict, per_edit: int, seed: int = 0) -> dict:
    """Copy `originals` into `folder` as o####.jpg and `per_edit` edited copies per edit as c####.jpg;
    returns {copy name: (edit, original name)}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i, f in enumerate(originals):
        shutil.copy(f, folder / f"o{i:04d}.jpg")
    truth, j = {}, 0
    for kind, make in edits.items():
        for i in rng.choice(len(originals), per_edit, replace=False):
            copy = make(Image.open(originals[i]).convert("RGB"), rng)
            jpeg(copy, 95).save(folder / f"c{j:04d}.jpg", quality=95)
            truth[f"c{j:04d}.jpg"] = (kind, f"o{i:04d}.jpg")
            j += 1
    return truth


def found_by_edit(ws, table: pd.DataFrame, truth: dict) -> dict:
    """Edit -> share of its planted pairs that ended in one group."""
    paths = ws.manifest()["path"].to_numpy()
    group = dict(zip(paths[table["id"].to_numpy()], table["group"]))
    hits: dict = {}
    for copy, (kind, original) in truth.items():
        hits.setdefault(kind, []).append(group.get(copy) is not None and group.get(copy) == group.get(original))
    return {kind: float(np.mean(h)) for kind, h in hits.items()}


def wrong_pairs(ws, table: pd.DataFrame, truth: dict) -> int:
    """Found pairs that join a planted copy to anything but its own original."""
    paths = ws.manifest()["path"].to_numpy()
    wrong = 0
    for _, g in table.groupby("group"):
        names = set(paths[g["id"].to_numpy()])
        for name in names & set(truth):
            wrong += len(names - {name, truth[name][1]} - {c for c in names if truth.get(c, (0, 0))[1] == truth[name][1]})
    return wrong


@pytest.fixture(scope="module")
def planted_cifar(tmp_path_factory, bundled_images):
    rng = np.random.default_rng(0)
    files = sorted(bundled_images.glob("*/*.jpg"))
    originals = [files[i] for i in rng.permutation(len(files))[:300]]
    root = tmp_path_factory.mktemp("planted")
    truth = plant(originals, root / "images", {**LIGHT, **HEAVY, **MIRROR}, per_edit=4)
    ws, _ = scan(root / "images", root / "ws")
    return ws, truth


def test_every_light_edit_is_found_at_the_defaults_on_real_images(planted_cifar):
    ws, truth = planted_cifar
    table = dedup(ws)
    found = found_by_edit(ws, table, truth)
    assert all(found[kind] == 1.0 for kind in LIGHT), found
    assert found["mirror"] == 0.0  # flips are not duplicates by default
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    assert meta["threshold_source"] == "calibrated" and 0.95 <= meta["expected_precision"] <= 1.0
    assert meta["calibration"]["pairs_above"] >= len(LIGHT) * 4 and meta["search"]["crops"] is False
    assert wrong_pairs(ws, table, truth) <= 0.05 * meta["pairs_found"]  # the bundled sample's own look-alikes
    pairs = read_pairs(ws)
    assert {"a", "b", "pixel", "embedding", "score", "null", "duplicate"} <= set(pairs.columns)
    assert int(pairs["duplicate"].sum()) == meta["pairs_found"]
    assert pairs["embedding"].isna().all()  # no embeddings in this workspace: pixels alone


def test_flips_option_finds_mirrored_copies(planted_cifar):
    ws, truth = planted_cifar
    found = found_by_edit(ws, dedup(ws, cfg=PairConfig(flips=True)), truth)
    assert found["mirror"] == 1.0, found
    # a copy may also match a mirrored look-alike now, so the threshold rises a little: most light edits stay found
    assert np.mean([found[kind] for kind in LIGHT]) >= 0.95, [f for f in found.items() if f[1] < 1]


def test_crops_option_finds_heavy_crops_and_keeps_light_edits(planted_cifar):
    """`--crops`: windows down to half of each side, then a dense search (2% apart) lines a 60%-area crop
    up with its original; at the defaults most such crops stay apart (a crop that heavy is a new framing).
    This workspace has no embeddings, so a crop is a candidate only when its low-frequency code stayed
    close: every crop that is one is found."""
    ws, truth = planted_cifar
    default = found_by_edit(ws, dedup(ws), truth)
    table = dedup(ws, cfg=PairConfig(crops=True))
    found = found_by_edit(ws, table, truth)
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    assert meta["search"]["crops"] is True and meta["expected_precision"] >= 0.95
    assert found["crop 60% area"] >= 0.5 and found["crop 60% area"] > default["crop 60% area"], (found, default)
    pairs, ids = read_pairs(ws), {p: i for i, p in enumerate(ws.manifest()["path"])}
    crops = [tuple(sorted((ids[c], ids[o]))) for c, (kind, o) in truth.items() if kind == "crop 60% area"]
    scored = pairs[~pairs["null"]].set_index(["a", "b"])["score"]
    candidates = [scored[p] for p in crops if p in scored.index]
    assert len(candidates) >= 2 and min(candidates) >= meta["threshold"], (candidates, meta["threshold"])
    assert np.mean([found[kind] for kind in LIGHT]) >= 0.9, [f for f in found.items() if f[1] < 1]
    assert wrong_pairs(ws, table, truth) <= 0.05 * meta["pairs_found"]


def test_marks_move_the_threshold_and_decide_their_pairs(planted_cifar):
    ws, truth = planted_cifar
    dedup(ws)
    before = storage.read_json(ws.sidecar(ws.duplicates_file))["threshold"]
    review = review_pairs(ws, 6)
    assert len(review) == 6 and set(review.columns) >= {"a", "b", "score"}
    below = review[review["score"] < before]
    assert len(below), "some reviewed pairs sit just below the threshold"
    a, b, score = int(below["a"].iloc[0]), int(below["b"].iloc[0]), float(below["score"].iloc[0])
    marks = mark_pairs(ws, [(a, b)], same=True)
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    assert len(marks) == 1 and meta["threshold_source"] == "marks" and meta["threshold"] <= score < before
    table = ws.duplicates()
    assert table.loc[table["id"] == a, "group"].item() == table.loc[table["id"] == b, "group"].item()
    mark_pairs(ws, [(a, b)], same=False)  # the last mark wins
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    assert len(read_marks(ws)) == 1 and meta["threshold"] == pytest.approx(before)
    pairs = read_pairs(ws)
    assert not pairs.loc[(pairs["a"] == a) & (pairs["b"] == b) & ~pairs["null"], "duplicate"].item()
    assert (ws.path / "duplicate_marks.parquet").exists() and dedup(ws) is not None  # marks survive a rerun
    assert storage.read_json(ws.sidecar(ws.duplicates_file))["marks"] == 1
    with pytest.raises(ValueError, match="not a candidate pair"):
        mark_pairs(ws, [(0, 0)], same=True)


def test_embeddings_add_candidates_and_lift_agreeing_pairs(built_workspace_copy):
    ws = built_workspace_copy
    dedup(ws)
    pairs = pd.read_parquet(ws.path / "duplicate_pairs.parquet")
    real = pairs[~pairs["null"]]
    assert real["embedding"].notna().all() and (real["score"] >= real["pixel"] - 1e-6).all()
    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    assert meta["embeddings"] is True and len(pairs["null"].unique()) == 2


def test_photos_edits_found_at_the_defaults(tmp_path, caltech_images):
    rng = np.random.default_rng(1)
    files = sorted(caltech_images.glob("*/*.jpg"))
    originals = [files[i] for i in rng.permutation(len(files))[:300]]
    truth = plant(originals, tmp_path / "images", LIGHT, per_edit=3)
    ws, _ = scan(tmp_path / "images", tmp_path / "ws")
    found = found_by_edit(ws, dedup(ws), truth)
    # Caltech holds look-alikes of its own (its Motorbikes are all side views): at 300 photos the
    # calibration keeps a margin, so one hard copy of an edit may fall below it (all 36 found on 2026-12-05)
    assert np.mean(list(found.values())) >= 0.95 and min(found.values()) >= 2 / 3, found


def test_aligned_similarity_sees_crops_and_shifts_but_not_other_images(bundled_images):
    files = sorted(bundled_images.glob("*/*.jpg"))[:40]
    rng = np.random.default_rng(0)
    imgs = [Image.open(f).convert("RGB") for f in files]
    thumbs = np.stack([thumbnail(i) for i in imgs] + [thumbnail(LIGHT["crop 90% area"](imgs[0], rng)),
                                                      thumbnail(LIGHT["translate 4%"](imgs[1], rng))])
    same = pixel_similarity(thumbs, np.array([[0, 40], [1, 41]]))
    others = aligned_similarity(thumbs, np.array([[0, j] for j in range(2, 40)]))
    assert same.min() > 0.85 and same.min() > np.sort(others)[-2]
    codes = dct_codes(thumbs)
    assert np.allclose(np.linalg.norm(codes, axis=1), 1, atol=1e-5)
    mirrored = dct_codes(thumbs[:, :, ::-1])
    assert np.allclose(mirror_codes(codes), mirrored, atol=1e-4)  # a flip in pixels = signs in DCT


def test_calibration_finds_the_lowest_threshold_with_the_target_precision():
    rng = np.random.default_rng(0)
    null = rng.uniform(0.0, 0.9, 10_000)  # chance scores never pass 0.9
    real = np.concatenate([rng.uniform(0.0, 0.9, 10_000), rng.uniform(0.92, 1.0, 100)])
    cal = calibrate(real, null, target=0.95)
    assert 0.88 < cal["threshold"] <= 0.92 and cal["expected_precision"] >= 0.95
    assert cal["pairs_above"] >= 100
    none = calibrate(rng.uniform(0, 0.9, 1000), rng.uniform(0, 0.9, 1000))
    assert none["pairs_above"] <= 5  # nothing stands out: (almost) nothing is called a duplicate


def test_threshold_from_marks():
    scores = np.array([0.80, 0.85, 0.90, 0.95])
    assert threshold_from_marks(scores, np.array([False, False, True, True]), prior=0.97)[0] == pytest.approx(0.875)
    t, wrong = threshold_from_marks(scores, np.array([False, True, False, True]), prior=0.87)
    assert wrong == 1 and t == pytest.approx(0.825)  # 0.825 and 0.925 both get one wrong: the nearer to 0.87
    assert threshold_from_marks(scores, np.array([False, False, True, True]), prior=0.88)[0] == pytest.approx(0.88)
    assert threshold_from_marks(np.array([]), np.array([], bool), prior=0.9) == (0.9, 0)


def test_groups_from_pairs_form_around_leaders():
    assert groups_from_pairs(np.array([[0, 1], [1, 2], [1, 3], [5, 6]]), 8) == [[0, 1, 2, 3], [5, 6]]
    assert groups_from_pairs(np.array([[0, 1], [2, 3], [3, 4], [4, 5], [5, 6]]), 7)[0] == [2, 3, 4]  # no chains
    assert groups_from_pairs(np.empty((0, 2)), 3) == []


def test_the_dense_stage_lines_up_light_crops_of_photos(caltech_images):
    """A 90%-area crop of a photo misses the 4% window grid by up to 2% of a side; the dense last
    stage (windows 1.5% apart) lines it up, and different photos stay far below."""
    from curate.quality import alignment

    files = sorted(caltech_images.glob("*/*.jpg"))
    rng = np.random.default_rng(0)
    imgs = [Image.open(files[i]).convert("RGB") for i in rng.permutation(len(files))[:30]]
    thumbs = np.stack([t for im in imgs for t in (thumbnail(im), thumbnail(LIGHT["crop 90% area"](im, rng)))])
    pairs = np.arange(len(thumbs)).reshape(-1, 2)
    dense = pixel_similarity(thumbs, pairs)
    grid_only = aligned_similarity(thumbs[..., :1], pairs, alignment.LIGHT)
    assert (dense >= grid_only - 1e-6).all() and np.quantile(dense, 0.1) > np.quantile(grid_only, 0.1) + 0.01
    assert np.quantile(dense, 0.1) >= 0.96, np.sort(dense)[:5]
    others = pixel_similarity(thumbs, np.array([[0, j] for j in range(2, len(thumbs), 2)]))
    assert others.max() < 0.8


def test_small_images_also_compare_their_low_frequency_codes(bundled_images):
    """At 32 px, JPEG quality 20 smears colour and blocks the image: the 16 px colour score drops, the
    DCT codes do not; a small pair takes the better of the two, a photo pair keeps its aligned score."""
    from curate.quality.pairs import small_image_score

    files = sorted(bundled_images.glob("*/*.jpg"))[:20]
    imgs = [Image.open(f).convert("RGB") for f in files]
    thumbs = np.stack([t for im in imgs for t in (thumbnail(im), thumbnail(jpeg(im, 20)))])
    pairs = np.arange(len(thumbs)).reshape(-1, 2)
    pixel = pixel_similarity(thumbs, pairs, sides=np.full(len(thumbs), 32))
    codes = dct_codes(thumbs)
    small = small_image_score(pixel, codes, pairs, np.full(len(thumbs), 32), flips=False, mirrored_null=None)
    assert (small >= pixel).all() and small.min() > 0.95 and pixel.min() < small.min()
    big = small_image_score(pixel, codes, pairs, np.full(len(thumbs), 500), flips=False, mirrored_null=None)
    assert np.array_equal(big, pixel)
    null = small_image_score(np.full(10, -1.0, np.float32), codes, pairs[:10] * 0 + [[0, 2]], np.full(len(thumbs), 32),
                             flips=False, mirrored_null="lr")
    assert np.allclose(null, codes[0] @ mirror_codes(codes)[2])  # the null compares with the mirrored partner


def test_a_washed_out_copy_still_lines_up_in_luma(caltech_images):
    """Brightening clips this watch's beige background to white and lower contrast then greys it:
    the copy's chroma no longer correlates (under REFINE in colour at 16 px), its luma still does. The
    luma route takes it to the 32 px stage; a different photo does not reach WASHED_OUT in luma."""
    from curate.quality import alignment

    watch = caltech_images / "watch" / "image_0095.jpg"  # part of the fixed dataset (its SOURCE.md): no skip
    im = Image.open(watch).convert("RGB")
    copy = jpeg(LIGHT["brightness/contrast"](im, None), 95)
    others = [Image.open(f).convert("RGB") for f in sorted((caltech_images / "watch").glob("*.jpg"))[:20] if f != watch]
    thumbs = np.stack([thumbnail(im), thumbnail(copy)] + [thumbnail(o) for o in others])
    pair = np.array([[0, 1]])
    colour, luma = aligned_similarity(thumbs, pair, alignment.LIGHT_COARSE, side=16, with_luma=True)
    assert colour[0] < alignment.REFINE <= alignment.WASHED_OUT <= luma[0], (colour, luma)
    assert pixel_similarity(thumbs, pair)[0] >= 0.98
    rest = np.array([[0, j] for j in range(2, len(thumbs))])
    assert aligned_similarity(thumbs, rest, alignment.LIGHT_COARSE, side=16, with_luma=True)[1].max() < alignment.WASHED_OUT
