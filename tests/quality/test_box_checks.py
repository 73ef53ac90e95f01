"""Annotation checks: IoU against hand-computed values, every flag on its planted problem and not on clean
boxes, and the real coco128 boxes (../shared/data/coco128-detect)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from curate.data.images import image_size
from curate.quality.box_checks import (FLAG_COLUMNS, METRIC_COLUMNS, BoxCheckConfig, box_flags, box_metrics,
                                       image_box_flags, iou, overlap_metrics, pairs_within)
from tests.conftest import SHARED

COCO128 = SHARED / "coco128-detect"


def table(rows, index=None) -> pd.DataFrame:
    """A BOX_COLUMNS table from (image, x0, y0, x1, y1, label[, iscrowd[, problem]]) tuples."""
    full = [(*r[:6], f"a.txt#{i}", r[6] if len(r) > 6 else False, r[7] if len(r) > 7 else None)
            for i, r in enumerate(rows)]
    return pd.DataFrame(full, columns=["image", "x0", "y0", "x1", "y1", "label", "annotation", "iscrowd", "problem"],
                        index=index)


SIZES = pd.DataFrame({"width": [100, 640], "height": [50, 480]}, index=["a.jpg", "b.jpg"])


def test_iou_matches_hand_computed_values():
    a = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 0, 0]])
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [1, 1, 3, 3], [2, 0, 4, 2], [1, 1, 3, 3], [0, 0, 0, 0]])
    # identical; half-shifted: 2 / (4 + 4 - 2); contained: 4 / 16; touching edges; corner: 1 / (4 + 4 - 1); empty
    np.testing.assert_allclose(iou(a, b), [1.0, 1 / 3, 0.25, 0.0, 1 / 7, 0.0])


def test_pairs_within_gives_every_pair_of_each_group_once_in_any_chunk_size():
    groups = np.sort(np.random.default_rng(0).integers(0, 12, 60))
    expected = {(i, j) for i, j in itertools.combinations(range(60), 2) if groups[i] == groups[j]}
    for chunk in (1, 7, 10_000):
        found = [(int(i), int(j)) for first, second in pairs_within(groups, chunk) for i, j in zip(first, second)]
        assert len(found) == len(expected) and set(found) == expected
    assert list(pairs_within(np.array([3]))) == [] and list(pairs_within(np.arange(5))) == []


def test_overlap_metrics_match_a_brute_force_loop():
    rng = np.random.default_rng(1)
    n = 80
    xy = rng.uniform(0, 50, (n, 2))
    coords = np.c_[xy, xy + rng.uniform(1, 30, (n, 2))]
    images, labels = rng.integers(0, 6, n), rng.integers(0, 3, n)
    found = overlap_metrics(coords, images, labels)
    for i in range(n):
        for kind, same in (("same", True), ("other", False)):
            peers = [j for j in range(n) if j != i and images[j] == images[i] and (labels[j] == labels[i]) == same]
            scores = iou(coords[[i] * len(peers)], coords[peers]) if peers else np.zeros(0)
            best = scores.max(initial=0.0)
            assert found[f"max_iou_{kind}"][i] == pytest.approx(best)
            if best > 0:
                assert iou(coords[[i]], coords[[found[f"{kind}_partner"][i]]])[0] == pytest.approx(best)
            else:
                assert found[f"{kind}_partner"][i] == -1


def test_box_metrics_by_hand_with_partners_as_index_labels():
    boxes = table([("a.jpg", 10, 10, 30, 20, "dog"),      # 20 x 10 in a 100 x 50 image
                   ("a.jpg", 20, 10, 40, 20, "dog"),      # overlaps row 10 by 10 x 10: IoU 100 / 300
                   ("a.jpg", 0, 10, 20, 20, "cat"),       # touches the left border; IoU 100 / 300 with row 10
                   ("b.jpg", 10, 10, 30, 20, "dog", True),  # a crowd box: measured, never paired
                   ("b.jpg", 10, 10, 30, 20, "dog"),
                   ("a.jpg", -5, 0, 10, 10, "dog", False, "outside the image")],
                  index=[10, 11, 12, 13, 14, 15])
    m = box_metrics(boxes, SIZES)
    assert list(m.columns) == list(METRIC_COLUMNS) and list(m.index) == list(boxes.index)
    assert m.loc[10, "area_ratio"] == pytest.approx(200 / 5000)
    assert m.loc[10, "min_side_px"] == 10 and m.loc[10, "aspect_ratio"] == 2.0
    assert m.loc[10, "border_gap_px"] == 10 and m.loc[12, "border_gap_px"] == 0
    assert m.loc[10, "max_iou_same"] == pytest.approx(1 / 3) and m.loc[10, "same_partner"] == 11
    assert m.loc[11, "same_partner"] == 10 and m.loc[11, "max_iou_other"] == 0
    assert pd.isna(m.loc[11, "other_partner"]) and pd.isna(m.loc[11, "other_label"])
    assert m.loc[12, "max_iou_other"] == pytest.approx(1 / 3) and m.loc[12, "other_partner"] == 10
    assert m.loc[12, "other_label"] == "dog" and m.loc[10, "other_label"] == "cat"
    assert m.loc[13, "max_iou_same"] == 0 and m.loc[14, "max_iou_same"] == 0  # identical, but 13 is a crowd
    assert m.loc[13, "area_ratio"] == pytest.approx(200 / (640 * 480))
    assert m.loc[15, list(METRIC_COLUMNS)].isna().all()  # a box with a problem is not measured
    assert box_flags(m).loc[15].isna().all()


def test_partners_of_a_non_integer_index_are_its_labels():
    boxes = table([("a.jpg", 0, 0, 10, 10, "dog"), ("a.jpg", 0, 0, 10, 10, "dog")], index=["p", "q"])
    m = box_metrics(boxes, SIZES.reset_index(names="path"))  # sizes as a manifest: a `path` column
    assert m["same_partner"].tolist() == ["q", "p"] and m["max_iou_same"].tolist() == [1.0, 1.0]


def test_each_flag_fires_on_its_planted_problem_and_not_on_clean_boxes():
    clean = [("b.jpg", 100, 100, 200, 180, "dog"), ("b.jpg", 150, 150, 300, 300, "cat"),  # overlap, IoU ~0.07
             ("b.jpg", 400, 50, 500, 250, "person"), ("b.jpg", 300, 320, 390, 400, "horse")]
    planted = {"duplicate_box": ("b.jpg", 102, 101, 201, 182, "dog"),      # IoU 0.93 with the dog
               "overlapping_classes": ("b.jpg", 401, 52, 499, 252, "bench"),  # the person's box, relabelled
               "tiny_box": ("b.jpg", 250, 60, 252, 62, "cat"),                # a 2 px click
               "extreme_aspect_ratio": ("b.jpg", 50, 300, 250, 310, "dog"),   # 200 x 10
               "cut_by_border": ("b.jpg", 560, 380, 640, 480, "dog")}         # in the bottom-right corner
    boxes = table(clean + list(planted.values()))
    flags = box_flags(box_metrics(boxes, SIZES))
    assert list(flags.columns) == list(FLAG_COLUMNS)
    raised = [flags.columns[flags.iloc[row].to_numpy(bool)].tolist() for row in range(len(boxes))]
    # clean boxes: flagged only as the partner of a planted twin (the dog, the person), never on their own
    assert raised[:len(clean)] == [["duplicate_box"], [], ["overlapping_classes"], []]
    assert raised[len(clean):] == [[flag] for flag in planted]
    looser = box_flags(box_metrics(boxes, SIZES), BoxCheckConfig(overlapping_classes=0.05))
    assert looser["overlapping_classes"].iloc[:2].all()  # the dog/cat overlap, once the threshold allows it


def test_image_box_flags_count_usable_boxes_per_listed_image():
    boxes = table([("a.jpg", 0, 0, 5, 5, "dog")] * 3 + [("b.jpg", 0, 0, 5, 5, "dog", False, "zero area"),
                                                         ("z.jpg", 0, 0, 5, 5, "dog")])
    out = image_box_flags(["b.jpg", "a.jpg", "c.jpg"], boxes, BoxCheckConfig(many_boxes=2))
    assert out.index.tolist() == ["b.jpg", "a.jpg", "c.jpg"]  # z.jpg is not listed: ignored
    assert out["n_boxes"].tolist() == [0, 3, 0]
    assert out["no_boxes"].tolist() == [True, False, True] and out["many_boxes"].tolist() == [False, True, False]


def test_config_round_trips_and_rejects_unknown_thresholds():
    cfg = BoxCheckConfig(tiny_box=5.0)
    assert BoxCheckConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown box check thresholds"):
        BoxCheckConfig.from_dict({"tiny": 2})


def read_coco128() -> tuple[pd.DataFrame, pd.DataFrame]:
    """coco128's YOLO labels as a BOX_COLUMNS table (pixels of the upright image) and the image sizes."""
    if not COCO128.is_dir():
        pytest.skip(f"needs ../shared/data/coco128-detect (absent at {COCO128}); it is present in CI")
    rows, sizes = [], {}
    for img in sorted((COCO128 / "images" / "train2017").glob("*.jpg")):
        w, h = sizes[str(img)] = image_size(img)
        label = COCO128 / "labels" / "train2017" / f"{img.stem}.txt"
        for i, line in enumerate(label.read_text().split("\n") if label.exists() else []):
            if line.strip():
                c, xc, yc, bw, bh = (float(v) for v in line.split())
                rows.append((str(img), (xc - bw / 2) * w, (yc - bh / 2) * h, (xc + bw / 2) * w, (yc + bh / 2) * h,
                             str(int(c)), f"{label.name}#{i}", False, None))
    boxes = pd.DataFrame(rows, columns=["image", "x0", "y0", "x1", "y1", "label", "annotation", "iscrowd", "problem"])
    return boxes, pd.DataFrame.from_dict(sizes, orient="index", columns=["width", "height"])


def test_coco128_clean_boxes_are_rarely_flagged_and_planted_duplicates_are():
    boxes, sizes = read_coco128()
    assert len(boxes) == 929  # 941 lines, 12 of them in two label files whose images are not there
    share = box_flags(box_metrics(boxes, sizes)).mean()
    assert share["duplicate_box"] == 0
    assert share[["overlapping_classes", "tiny_box", "extreme_aspect_ratio"]].max() < 0.01
    assert 0.1 < share["cut_by_border"] < 0.25  # photos crop their objects: a property, not a mistake

    rng = np.random.default_rng(0)
    w, h = (boxes.x1 - boxes.x0).to_numpy(), (boxes.y1 - boxes.y0).to_numpy()
    twins = boxes.copy()
    for col, side in (("x0", w), ("x1", w), ("y0", h), ("y1", h)):
        twins[col] += rng.uniform(-0.03, 0.03, len(boxes)) * side
    relabelled = twins.assign(label=(boxes.label.astype(int) + 1).astype(str))
    planted = box_flags(box_metrics(pd.concat([boxes, twins, relabelled], ignore_index=True), sizes))
    n = len(boxes)
    assert planted["duplicate_box"].iloc[n:2 * n].mean() > 0.95
    assert planted["overlapping_classes"].iloc[2 * n:].mean() > 0.95

    per_image = image_box_flags(list(sizes.index), boxes)
    assert sorted(p.rsplit("/", 1)[1] for p in per_image.index[per_image["no_boxes"]]) == \
        ["000000000250.jpg", "000000000508.jpg"]
    assert not per_image["many_boxes"].any()
