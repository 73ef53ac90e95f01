"""Annotation writers (curate.export.formats): read -> write -> read is the identity on the real COCO128
boxes for YOLO, COCO and VOC; the COCO file loads in pycocotools; tasks.json follows Label Studio's task
format (https://labelstud.io/guide/task_format, /guide/predictions)."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED
from curate.data.annotations import AnnotationSet, read_annotations
from curate.data.annotations.base import box_frame, box_row
from curate.data.annotations.yolo import label_path
from curate.data.images import image_size
from curate.export.formats import write_coco, write_labelstudio, write_voc, write_yolo
from curate.export.formats.yolo import label_target

COCO128 = SHARED / "coco128-detect"
READ_FROM = {"yolo": "data.yaml", "coco": "annotations/instances.json", "voc": "Annotations"}
WRITE = {"yolo": write_yolo, "coco": write_coco, "voc": write_voc}


@pytest.fixture(scope="module")
def coco128():
    if not (COCO128 / "data.yaml").is_file():
        pytest.skip(f"needs ../shared/data/coco128-detect (absent at {COCO128}); it is present in CI")
    sizes = {p.relative_to(COCO128).as_posix(): image_size(p) for p in sorted(COCO128.rglob("*.jpg"))}
    found = read_annotations(COCO128 / "data.yaml", COCO128, sizes)
    images = pd.DataFrame([(p, *sizes[p]) for p in found.images], columns=["path", "width", "height"])
    return sizes, found, images


def export(fmt: str, images, boxes, classes, target: Path) -> Path:
    """Write `fmt` and link each image where the writer says (what the export step's copy does)."""
    written = WRITE[fmt](images, boxes, classes, target)
    for path, place in written.images.items():
        (target / place).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(COCO128 / path, target / place)
    assert all(f.is_file() for f in written.files)
    return target / READ_FROM[fmt]


def comparable(found: AnnotationSet) -> pd.DataFrame:
    cols = ["image", "x0", "y0", "x1", "y1", "label", "iscrowd"]
    return found.usable[cols].sort_values(["image", "x0", "y0", "x1", "y1"]).reset_index(drop=True)


def assert_same(a: AnnotationSet, b: AnnotationSet) -> None:
    left, right = comparable(a), comparable(b)
    assert len(left) == len(right) and b.problems.empty
    assert left["image"].tolist() == right["image"].tolist() and left["label"].tolist() == right["label"].tolist()
    assert left["iscrowd"].tolist() == right["iscrowd"].tolist()
    np.testing.assert_allclose(left[["x0", "y0", "x1", "y1"]].to_numpy(), right[["x0", "y0", "x1", "y1"]].to_numpy(),
                               atol=1e-6, rtol=0)
    assert a.classes == b.classes and a.images == b.images


@pytest.mark.parametrize("fmt", ["yolo", "coco", "voc"])
def test_read_write_read_is_the_identity(tmp_path, coco128, fmt):
    sizes, source, images = coco128
    if fmt == "yolo":
        first = source
    else:  # a fixture in this format, from the real YOLO boxes
        first = read_annotations(export(fmt, images, source.boxes, source.classes, tmp_path / "fixture"), COCO128, sizes)
        assert_same(source if fmt == "coco" else _sorted_classes(source), first)
    second = read_annotations(export(fmt, images, first.boxes, first.classes, tmp_path / "out"), COCO128, sizes)
    assert second.format == fmt and len(second.usable) == 929
    assert_same(first, second)


def _sorted_classes(found: AnnotationSet) -> AnnotationSet:
    """What VOC keeps of the classes: the names in use, sorted (VOC has no class list)."""
    return AnnotationSet(found.format, found.boxes, found.images, sorted(set(found.usable["label"])), found.files)


def test_coco_file_loads_in_pycocotools(tmp_path, coco128):
    from pycocotools.coco import COCO

    _, source, images = coco128
    written = write_coco(images, source.boxes, source.classes, tmp_path)
    coco = COCO(str(written.files[0]))
    assert len(coco.getAnnIds()) == 929 and len(coco.getImgIds()) == 128
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == source.classes
    image = coco.loadImgs(coco.getImgIds())[0]
    assert image["file_name"] == "images/train2017/000000000009.jpg" and (image["width"], image["height"]) == (640, 480)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
    want = source.usable[source.usable["image"] == image["file_name"]]
    assert len(anns) == len(want)
    np.testing.assert_allclose(anns[0]["bbox"], [1.08, 187.69008, 611.58976, 285.84], atol=1e-6)  # bowl, line 1
    assert coco.loadCats(anns[0]["category_id"])[0]["name"] == "bowl"
    assert coco.annToMask(anns[0]).sum() == pytest.approx(anns[0]["area"], rel=0.01)
    assert written.images["images/train2017/000000000009.jpg"] == "images/images/train2017/000000000009.jpg"


def test_yolo_layout_is_what_ultralytics_reads(tmp_path, coco128):
    _, source, images = coco128
    images = images.assign(split=["val" if k % 4 == 0 else "train" for k in range(len(images))])
    written = write_yolo(images, source.boxes, source.classes, tmp_path)
    place = written.images["images/train2017/000000000009.jpg"]
    assert place == "images/val/images_/train2017/000000000009.jpg"
    assert label_target(place) == "labels/val/images_/train2017/000000000009.txt"
    assert label_path(str(tmp_path / place)) == str(tmp_path / label_target(place))  # ultralytics' rule
    line = (tmp_path / label_target(place)).read_text().splitlines()[0]
    assert line == "45 0.479492 0.688771 0.955609 0.5955"  # the source line, back exactly
    assert (tmp_path / "labels/train/images_/train2017/000000000250.txt").read_text() == ""  # no boxes
    data = (tmp_path / "data.yaml").read_text()
    assert "train: images/train\nval: images/val\nnc: 80\nnames:\n  0: person\n" in data and "path:" not in data


def test_voc_corners_invert_the_reader(tmp_path):
    images = pd.DataFrame({"path": ["cats/a.jpg"], "width": [100], "height": [50]})
    boxes = box_frame([box_row("cats/a.jpg", (0, 0, 100, 50), "cat", "x#1"),
                       box_row("cats/a.jpg", (0.25, 1.5, 2.75, 3.125), "cat", "x#2"),
                       box_row("cats/a.jpg", (5, 5, 1, 1), "cat", "x#3", problem="zero or negative area")])
    written = write_voc(images, boxes, ["cat"], tmp_path)
    root = ET.parse(written.files[0]).getroot()
    assert written.files[0] == tmp_path / "Annotations/cats/a.xml" and written.images == {"cats/a.jpg": "JPEGImages/cats/a.jpg"}
    corners = [[o.findtext(f"bndbox/{c}") for c in ("xmin", "ymin", "xmax", "ymax")] for o in root.iter("object")]
    assert corners == [["1", "1", "100", "50"], ["1.25", "2.5", "2.75", "3.125"]]  # the problem row is left out
    assert root.findtext("filename") == "a.jpg" and root.findtext("size/width") == "100"


def test_writers_refuse_what_they_cannot_write(tmp_path):
    images = pd.DataFrame({"path": ["a.jpg", "a.png"], "width": [10, 10], "height": [10, 10]})
    boxes = box_frame([box_row("a.jpg", (1, 1, 5, 5), "cat", "x#1")])
    with pytest.raises(ValueError, match=r"box labels \['cat'\] are not in the class list"):
        write_coco(images, boxes, ["dog"], tmp_path)
    with pytest.raises(ValueError, match="a.png and a.jpg would both write the label file"):
        write_yolo(images, boxes, ["cat"], tmp_path)
    with pytest.raises(ValueError, match="split must be one of train, val, test"):
        write_yolo(images.assign(split="holdout"), boxes, ["cat"], tmp_path)
    with pytest.raises(ValueError, match="lacks columns"):
        write_voc(images.drop(columns="width"), boxes, ["cat"], tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def check_labelstudio_task(task: dict, labels: set[str]) -> None:
    """The documented task format: data.image, predictions[].result[] rectanglelabels regions in percent."""
    assert set(task) == {"data", "predictions"} and isinstance(task["data"]["image"], str)
    for prediction in task["predictions"]:
        assert isinstance(prediction["model_version"], str) and isinstance(prediction["result"], list)
        ids = [r["id"] for r in prediction["result"]]
        assert len(set(ids)) == len(ids)
        for r in prediction["result"]:
            assert (r["type"], r["from_name"], r["to_name"]) == ("rectanglelabels", "label", "image")
            assert isinstance(r["original_width"], int) and isinstance(r["original_height"], int)
            v = r["value"]
            assert 0 <= v["x"] and 0 <= v["y"] and v["width"] > 0 and v["height"] > 0
            assert v["x"] + v["width"] <= 100 + 1e-6 and v["y"] + v["height"] <= 100 + 1e-6
            assert len(v["rectanglelabels"]) == 1 and v["rectanglelabels"][0] in labels
            assert all(isinstance(t, str) for t in r["meta"]["text"])


def test_labelstudio_tasks_follow_the_task_format(tmp_path, coco128):
    _, source, images = coco128
    first = source.usable.iloc[0]
    written = write_labelstudio(images, source.boxes, source.classes, tmp_path,
                                suggested={first["annotation"]: "dog", "nowhere#1": "zebra-ish"})
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    config = ET.parse(tmp_path / "label_config.xml").getroot()
    labels = {label.get("value") for label in config.iter("Label")}
    assert config.find("Image").get("name") == "image" and config.find("Image").get("value") == "$image"
    assert config.find("RectangleLabels").get("name") == "label" and config.find("RectangleLabels").get("toName") == "image"
    assert set(source.classes) | {"zebra-ish"} == labels
    assert len(tasks) == 128
    for t in tasks:
        check_labelstudio_task(t, labels)
    by_path = {t["data"]["path"]: t for t in tasks}
    t = by_path[first["image"]]
    assert t["data"]["image"] == "/data/local-files/?d=images/images/train2017/000000000009.jpg"
    assert written.images[first["image"]] == "images/images/train2017/000000000009.jpg"
    region = t["predictions"][0]["result"][0]
    w, h = region["original_width"], region["original_height"]
    v = region["value"]
    back = [v["x"] * w / 100, v["y"] * h / 100, (v["x"] + v["width"]) * w / 100, (v["y"] + v["height"]) * h / 100]
    np.testing.assert_allclose(back, first[["x0", "y0", "x1", "y1"]].astype(float), atol=1e-6)
    assert v["rectanglelabels"] == ["bowl"] and "curate suggests: dog" in region["meta"]["text"]
    suggested = t["predictions"][1]
    assert suggested["model_version"] == "curate-suggested"
    assert suggested["result"][0]["value"]["rectanglelabels"] == ["dog"]
    assert [r["value"]["rectanglelabels"] for r in suggested["result"][1:]] == \
        [r["value"]["rectanglelabels"] for r in t["predictions"][0]["result"][1:]]
    assert all(len(other["predictions"]) == 1 for p, other in by_path.items() if p != first["image"])
