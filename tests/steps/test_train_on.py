"""`--train-on`: the train step trains on the ok rows of the kinds asked for (curate.steps.train)."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

import curate.steps.train as train_step
from tests.conftest import SHARED
from curate.data.items import kinds
from curate.steps.options import RunOptions
from curate.steps.scan import scan

COCO128 = SHARED / "coco128-detect"
PHOTOS = ("000000000009", "000000000025", "000000000030", "000000000034")


@pytest.fixture(scope="module")
def object_workspace(tmp_path_factory):
    """A workspace of 4 coco128 photos and their boxes (image and object items)."""
    if not COCO128.is_dir():
        pytest.skip(f"needs ../shared/data/coco128-detect (absent at {COCO128}); it is present in CI")
    root = tmp_path_factory.mktemp("coco4")
    for sub in ("images", "labels"):
        (root / sub / "train2017").mkdir(parents=True)
    for stem in PHOTOS:
        shutil.copy2(COCO128 / "images" / "train2017" / f"{stem}.jpg", root / "images" / "train2017")
        shutil.copy2(COCO128 / "labels" / "train2017" / f"{stem}.txt", root / "labels" / "train2017")
    shutil.copy2(COCO128 / "data.yaml", root / "data.yaml")
    ws, _ = scan(root, tmp_path_factory.mktemp("ws"), annotations=root / "data.yaml")
    return ws


def test_frames_count_as_images():
    manifest = pd.DataFrame({"kind": ["image", "video", "frame", "object"]})
    assert train_step.training_kinds_mask(manifest, "images").tolist() == [True, False, True, False]
    assert train_step.training_kinds_mask(manifest, "objects").tolist() == [False, False, False, True]
    assert train_step.training_kinds_mask(manifest, "both").tolist() == [True, False, True, True]
    with pytest.raises(ValueError, match="train_on"):
        train_step.training_kinds_mask(manifest, "videos")


def test_train_on_objects_trains_only_on_object_rows(object_workspace, monkeypatch):
    train_on, expected = "objects", {"object"}
    ws = object_workspace
    found = kinds(ws.manifest())
    assert {"image", "object"} <= set(found)
    seen = {}
    real_loop = train_step.train_loop

    def spy(images, train_ids, cfg, *args, **kwargs):
        seen["ids"] = np.asarray(train_ids)
        return real_loop(images, train_ids, cfg, *args, **kwargs)

    monkeypatch.setattr(train_step, "train_loop", spy)
    options = RunOptions(train_on=train_on, epochs=1, batch_size=8, image_size=32, holdout=0.0, health_minutes=0,
                         seed=0, retrain=True)
    train_step.run(ws, options)
    assert set(found[seen["ids"]]) == expected
    assert len(seen["ids"]) == int(np.isin(found, list(expected)).sum())
    config = ws.model_config()
    assert config["train_config"]["train_on"] == train_on
    assert config["trained"]["train_on"] == train_on
    assert config["trained"]["train_images"] == len(seen["ids"])
