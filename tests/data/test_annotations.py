"""Annotation readers (curate.data.annotations): the real COCO128 YOLO labels, COCO and VOC fixtures built
here from those label lines, and broken fixtures made in tmp_path (every problem a row, never fatal)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SHARED
from curate.data.annotations import AnnotationSet, detect_format, read_annotations
from curate.data.images import image_size
from curate.data.items import BOX_COLUMNS

COCO128 = SHARED / "coco128-detect"


@pytest.fixture(scope="session")
def coco128() -> Path:
    if not (COCO128 / "data.yaml").is_file():
        pytest.skip(f"needs ../shared/data/coco128-detect (absent at {COCO128}); it is present in CI")
    return COCO128


@pytest.fixture(scope="session")
def coco128_sizes(coco128) -> dict:
    """{manifest path: (w, h) as decoded}, as the scanned manifest gives it."""
    return {p.relative_to(coco128).as_posix(): image_size(p) for p in sorted(coco128.rglob("*.jpg"))}


@pytest.fixture(scope="session")
def coco128_yolo(coco128, coco128_sizes) -> AnnotationSet:
    return read_annotations(coco128 / "data.yaml", coco128, coco128_sizes)


def label_lines(root: Path, sizes: dict) -> list[tuple[str, int, float, float, float, float]]:
    """(image, class id, x0, y0, x1, y1) of every label line whose image exists, computed here straight
    from the files (pixels = normalised values times the image size)."""
    out = []
    for path, (w, h) in sorted(sizes.items()):
        labels = root / path.replace("images/", "labels/", 1).replace(".jpg", ".txt")
        if not labels.is_file():
            continue
        for line in labels.read_text().splitlines():
            c, cx, cy, bw, bh = line.split()
            cx, cy, bw, bh = float(cx), float(cy), float(bw), float(bh)
            box = (max((cx - bw / 2) * w, 0), max((cy - bh / 2) * h, 0), min((cx + bw / 2) * w, w),
                   min((cy + bh / 2) * h, h))
            out.append((path, int(c), *box))
    return out


def sorted_boxes(frame):
    return frame.sort_values(["image", "x0", "y0", "x1", "y1"]).reset_index(drop=True)


def assert_same_boxes(found, expected_rows, names):
    """`found` (box frame) holds exactly the (image, class id, x0..y1) rows, within 1e-6 px."""
    got = sorted_boxes(found)
    want = sorted(expected_rows, key=lambda r: (r[0], r[2], r[3], r[4], r[5]))
    assert len(got) == len(want)
    assert got["image"].tolist() == [r[0] for r in want]
    assert got["label"].tolist() == [names[r[1]] for r in want]
    np.testing.assert_allclose(got[["x0", "y0", "x1", "y1"]].to_numpy(), np.array([r[2:] for r in want]), atol=1e-6)


# --- the real YOLO data -----------------------------------------------------------------------------------


def test_yolo_reads_every_coco128_box(coco128, coco128_sizes, coco128_yolo):
    found = coco128_yolo
    assert found.format == "yolo" and list(found.boxes.columns) == BOX_COLUMNS
    assert found.classes[:3] == ["person", "bicycle", "car"] and len(found.classes) == 80
    assert found.images == sorted(coco128_sizes)  # 128, the two without a label file included
    assert len(found.usable) == 929
    names = dict(enumerate(found.classes))
    assert_same_boxes(found.usable, label_lines(coco128, coco128_sizes), names)
    # Two label files of the sample have no image (SOURCE.md's 941 boxes count their 12 lines).
    orphans = found.problems
    assert sorted(orphans["annotation"]) == ["labels/train2017/000000000656.txt", "labels/train2017/000000000659.txt"]
    assert orphans["image"].isna().all() and set(orphans["problem"]) == {"label file without an image"}
    assert {"images/train2017/000000000250.jpg", "images/train2017/000000000508.jpg"} <= set(found.images)
    assert not {"images/train2017/000000000250.jpg"} & set(found.usable["image"])


def test_yolo_box_by_hand(coco128_yolo):
    """000000000009.txt line 1: `45 0.479492 0.688771 0.955609 0.5955` on a 640x480 image."""
    row = coco128_yolo.boxes.set_index("annotation").loc["labels/train2017/000000000009.txt#1"]
    assert row["image"] == "images/train2017/000000000009.jpg" and row["label"] == "bowl"
    expected = [(0.479492 - 0.955609 / 2) * 640, (0.688771 - 0.5955 / 2) * 480,
                (0.479492 + 0.955609 / 2) * 640, (0.688771 + 0.5955 / 2) * 480]
    np.testing.assert_allclose(row[["x0", "y0", "x1", "y1"]].astype(float), expected, atol=1e-9)
    np.testing.assert_allclose(expected, [1.08, 187.69008, 612.66976, 473.53008], atol=1e-6)
    assert not row["iscrowd"] and row["problem"] is None


def test_yolo_files_stamp_what_was_read(coco128, coco128_yolo):
    files = coco128_yolo.files
    label = os.path.abspath(coco128 / "labels/train2017/000000000009.txt")
    st = os.stat(label)
    assert files[label] == [st.st_size, st.st_mtime_ns]
    assert os.path.abspath(coco128 / "data.yaml") in files
    assert sum(f.endswith(".txt") for f in files) == 128  # 126 read + 2 without an image


# --- COCO and VOC built from the label lines --------------------------------------------------------------


def coco_from_lines(lines, sizes, names) -> dict:
    """A COCO document made by hand: category ids out of order (COCO's are not 0..K-1), image ids from 1000."""
    images = {p: 1000 + k for k, p in enumerate(sorted(sizes))}
    doc = {"images": [{"id": i, "file_name": p.split("/")[-1], "width": sizes[p][0], "height": sizes[p][1]}
                      for p, i in images.items()],
           "categories": [{"id": 200 - c, "name": n} for c, n in names.items()], "annotations": []}
    for k, (path, c, x0, y0, x1, y1) in enumerate(lines):
        doc["annotations"].append({"id": 5000 + k, "image_id": images[path], "category_id": 200 - c,
                                   "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0, "area": (x1 - x0) * (y1 - y0)})
    return doc


def test_coco_reads_boxes_made_from_the_label_lines(tmp_path, coco128, coco128_sizes, coco128_yolo):
    names = dict(enumerate(coco128_yolo.classes))
    lines = label_lines(coco128, coco128_sizes)
    path = tmp_path / "whatever.name"  # detected by content, not name
    path.write_text(json.dumps(coco_from_lines(lines, coco128_sizes, names)))
    assert detect_format(path) == "coco"
    found = read_annotations(path, coco128, coco128_sizes)
    assert found.problems.empty and found.images == sorted(coco128_sizes)
    assert_same_boxes(found.boxes, lines, names)
    assert found.classes == list(reversed(coco128_yolo.classes))  # sorted by category id
    assert found.boxes["annotation"].iloc[0] == "whatever.name#5000"


def voc_from_lines(folder: Path, lines, sizes, names) -> None:
    """One VOC XML per image, corners 1-based inclusive (xmin = x0 + 1, xmax = x1), written by hand."""
    by_image = {}
    for path, c, x0, y0, x1, y1 in lines:
        by_image.setdefault(path, []).append(
            f"<object><name>{names[c]}</name><difficult>0</difficult><bndbox><xmin>{x0 + 1!r}</xmin>"
            f"<ymin>{y0 + 1!r}</ymin><xmax>{x1!r}</xmax><ymax>{y1!r}</ymax></bndbox></object>")
    folder.mkdir(parents=True)
    for path, objects in by_image.items():
        w, h = sizes[path]
        name = path.split("/")[-1]
        (folder / name.replace(".jpg", ".xml")).write_text(
            f"<annotation><folder>VOC2012</folder><filename>{name}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{''.join(objects)}</annotation>")


def test_voc_reads_boxes_made_from_the_label_lines(tmp_path, coco128, coco128_sizes, coco128_yolo):
    names = dict(enumerate(coco128_yolo.classes))
    lines = label_lines(coco128, coco128_sizes)
    voc_from_lines(tmp_path / "Annotations", lines, coco128_sizes, names)
    assert detect_format(tmp_path) == "voc"
    found = read_annotations(tmp_path, coco128, coco128_sizes)
    assert found.problems.empty and len(found.images) == 126  # the images that have a label file
    assert_same_boxes(found.boxes, lines, names)
    assert found.classes == sorted({names[c] for _, c, *_ in lines})
    assert found.boxes["annotation"].iloc[0] == "Annotations/000000000009.xml#0"


# --- broken fixtures --------------------------------------------------------------------------------------


def make_images(root: Path, sizes: dict) -> dict:
    for rel, (w, h) in sizes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (90, 120, 150)).save(root / rel)
    return dict(sizes)


def problems_by_key(found: AnnotationSet) -> dict:
    return dict(zip(found.boxes["annotation"], found.boxes["problem"]))


def test_yolo_problems_are_rows(tmp_path):
    sizes = make_images(tmp_path, {"images/train/a.jpg": (100, 50), "images/train/c.jpg": (40, 40)})
    make_images(tmp_path, {"images/train/unscanned.jpg": (10, 10)})  # on disk, not in the manifest
    (tmp_path / "labels/train").mkdir(parents=True)
    (tmp_path / "labels/train/a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n"  # 1: fine
        "0 1.5 1.5 0.2 0.2\n"  # 2: outside
        "0 0.5 0.5 0 0.1\n"  # 3: zero area
        "7 0.5 0.5 0.1 0.1\n"  # 4: unknown class id
        "0 0.5 abc\n"  # 5: malformed
        "1 0.95 0.5 0.2 0.2\n"  # 6: partly outside: clipped
        "0 0.5 0.5 0.2 0.2\n"  # 7: duplicate of 1
        "\n1 0.1 0.1 0.3 0.1 0.3 0.3\n")  # 9: a polygon (line 8 blank)
    (tmp_path / "labels/train/orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "labels/train/unscanned.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/missing\nnames: [cat, dog]\n")
    found = read_annotations(tmp_path / "data.yaml", tmp_path, sizes)
    p = problems_by_key(found)
    assert p["labels/train/a.txt#1"] is None and p["labels/train/a.txt#9"] is None
    assert p["labels/train/a.txt#2"].startswith("outside the image (100x50)")
    assert p["labels/train/a.txt#3"].startswith("zero or negative area")
    assert p["labels/train/a.txt#4"].startswith("unknown class id 7")
    assert p["labels/train/a.txt#5"].startswith("malformed line")
    assert p["labels/train/a.txt#7"] == "duplicate of line 1"
    assert p["labels/train/orphan.txt"] == "label file without an image"
    assert "not among the scanned images" in p["labels/train/unscanned.txt"]
    assert "images/missing is neither a folder nor a .txt list" in p["data.yaml"]
    boxes = found.boxes.set_index("annotation")
    np.testing.assert_allclose(boxes.loc["labels/train/a.txt#6", ["x0", "y0", "x1", "y1"]].astype(float),
                               [85, 20, 100, 30])  # 0.85..1.05 of 100 px clipped at the edge
    np.testing.assert_allclose(boxes.loc["labels/train/a.txt#9", ["x0", "y0", "x1", "y1"]].astype(float),
                               [10, 5, 30, 15])
    assert boxes.loc["labels/train/a.txt#6", "label"] == "dog"
    assert found.images == ["images/train/a.jpg", "images/train/c.jpg"]  # c.jpg: no label file, no boxes


def test_yolo_txt_list_and_unreadable_yaml(tmp_path):
    sizes = make_images(tmp_path, {"data/images/x.png": (20, 10), "data/images/y.png": (20, 10)})
    (tmp_path / "data/labels").mkdir()
    (tmp_path / "data/labels/x.txt").write_text("0 0.5 0.5 1 1\n")
    (tmp_path / "data/list.txt").write_text("./images/x.png\n")
    (tmp_path / "d.yaml").write_text("path: data\ntrain: list.txt\nnames: {0: thing}\n")
    found = read_annotations(tmp_path / "d.yaml", tmp_path, sizes)
    assert found.images == ["data/images/x.png"]  # y.png is not in the list
    assert found.usable[["x0", "y0", "x1", "y1"]].to_numpy().tolist() == [[0, 0, 20, 10]]
    (tmp_path / "bad.yaml").write_text("names: [a\ntrain: :\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        read_annotations(tmp_path / "bad.yaml", tmp_path, sizes, format="yolo")


def test_coco_problems_are_rows(tmp_path):
    sizes = make_images(tmp_path, {"a.jpg": (100, 50), "sub/b.jpg": (30, 60)})
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50},
                      {"id": 2, "file_name": "other/sub/b.jpg", "width": 60, "height": 30},  # rotated by EXIF?
                      {"id": 3, "file_name": "gone.jpg", "width": 5, "height": 5}, {"file_name": 7}],
           "categories": [{"id": 9, "name": "dog"}, {"id": 3, "name": "cat"}],
           "annotations": [
               {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 20], "iscrowd": 1},
               {"id": 11, "image_id": 99, "category_id": 3, "bbox": [0, 0, 5, 5]},
               {"id": 12, "image_id": 1, "category_id": 4, "bbox": [0, 0, 5, 5]},
               {"id": 13, "image_id": 1, "category_id": 9, "bbox": [10, 10, -5, 5]},
               {"id": 14, "image_id": 1, "category_id": 9, "bbox": [10, 10]},
               {"id": 15, "image_id": 3, "category_id": 9, "bbox": [0, 0, 1, 1]},
               {"id": 16, "image_id": 2, "category_id": 9, "bbox": [0, 0, 1, 1]},
               {"id": 17, "image_id": 1, "category_id": 9, "bbox": [200, 0, 10, 10]}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    found = read_annotations(tmp_path / "ann.json", tmp_path, sizes)
    assert found.classes == ["cat", "dog"]
    p = problems_by_key(found)
    crowd = found.boxes.set_index("annotation").loc["ann.json#10"]
    assert p["ann.json#10"] is None and crowd["iscrowd"] and crowd["label"] == "cat"
    assert crowd[["x0", "y0", "x1", "y1"]].tolist() == [10, 10, 30, 30]
    assert p["ann.json#11"] == "unknown image_id 99"
    assert p["ann.json#12"] == "unknown category_id 4"
    assert p["ann.json#13"].startswith("zero or negative area")
    assert p["ann.json#14"].startswith("malformed bbox")
    assert "'gone.jpg' is not in the scanned images" in p["ann.json#15"]
    assert p["ann.json#16"] == "image size in the file (60x30) differs from the decoded image (30x60)"
    assert p["ann.json#17"].startswith("outside the image")
    assert p["ann.json#image3"].startswith("malformed image entry 3")
    assert found.images == ["a.jpg", "sub/b.jpg"]
    (tmp_path / "broken.json").write_text('{"images": [')
    with pytest.raises(ValueError, match="broken.json: not a readable COCO JSON"):
        read_annotations(tmp_path / "broken.json", tmp_path, sizes, format="coco")


def test_voc_problems_are_rows(tmp_path):
    sizes = make_images(tmp_path / "imgs", {"a.jpg": (100, 50)})
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>100</width><height>50</height></size>"
        "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>100</xmax><ymax>50</ymax></bndbox></object>"
        "<object><name>cat</name><bndbox><xmin>5</xmin><ymin>x</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        "<object><name></name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>9</xmin><ymin>5</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object>"
        "</annotation>")
    (ann / "broken.xml").write_text("<annotation><object>")
    (ann / "other.xml").write_text("<config/>")
    (ann / "lost.xml").write_text("<annotation><filename>lost.jpg</filename><object><name>cat</name>"
                                  "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object>"
                                  "</annotation>")
    found = read_annotations(ann, tmp_path / "imgs", sizes)
    p = problems_by_key(found)
    assert found.boxes.iloc[0][["x0", "y0", "x1", "y1"]].tolist() == [0, 0, 100, 50]  # 1-based inclusive: whole image
    assert p["a.xml#0"] is None
    assert p["a.xml#1"].startswith("malformed <bndbox>")
    assert p["a.xml#2"] == "object without a <name>"
    assert p["a.xml#3"].startswith("zero or negative area")
    assert p["broken.xml"].startswith("malformed XML")
    assert p["other.xml"].startswith("not a VOC annotation (root element <config>")
    assert "'lost.jpg' is not in the scanned images" in p["lost.xml#0"]
    assert found.classes == ["cat", "dog"] and found.images == ["a.jpg"]
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    shutil.copy(ann / "broken.xml", only_bad)
    with pytest.raises(ValueError, match="no readable VOC annotation file"):
        read_annotations(only_bad, tmp_path / "imgs", sizes, format="voc")


def test_detect_format_refuses_what_it_does_not_know(tmp_path):
    (tmp_path / "data.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match="not a known annotation format.*COCO.*YOLO.*VOC"):
        detect_format(tmp_path / "data.json")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not a known annotation format"):
        detect_format(tmp_path / "folder")
    with pytest.raises(ValueError, match="no such file or folder"):
        detect_format(tmp_path / "absent")
    (tmp_path / "labels.cfg").write_text("path: .\ntrain: images\nnames: [a]\n")
    assert detect_format(tmp_path / "labels.cfg") == "yolo"
    with pytest.raises(ValueError, match="format must be one of coco, yolo, voc"):
        read_annotations(tmp_path / "labels.cfg", tmp_path, {}, format="kitti")
