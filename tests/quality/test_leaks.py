"""Duplicates across splits (issue 29): test images with a copy in train, planted in real photos."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from tests.conftest import REPO
from curate.quality.leaks import leaks, split_from_path, splits_of


def test_a_split_is_the_first_split_folder_of_a_path():
    assert split_from_path("data/train/cat/1.jpg") == "train"
    assert split_from_path("Validation/x.png") == "val"
    assert split_from_path("cats/1.jpg") is None
    assert split_from_path("train.jpg") is None  # a file name is not a folder
    m = pd.DataFrame({"path": ["a/train/1.jpg", "b/2.jpg"], "split": ["test", None]})
    assert splits_of(m).tolist() == ["test", None]  # a split column wins over the folders


def test_leaks_are_the_other_splits_members_of_groups_with_a_train_member():
    groups = pd.DataFrame({"id": [0, 1, 2, 3, 4, 5], "group": [7, 7, 8, 8, 9, 9],
                           "kind": ["exact", "exact", "near", "near", "near", "near"]})
    splits = pd.Series(["train", "test", "test", "test", "train", "val"]).to_numpy(object)
    found = leaks(groups, splits)
    assert found[["id", "split", "copy_of"]].values.tolist() == [[1, "test", 0], [5, "val", 4]]  # group 8: no train


@pytest.fixture(scope="module")
def leaky(tmp_path_factory, bundled_images):
    """A scanned and deduplicated folder with train/ and test/, five train images re-encoded into test:
    (workspace, {test path: train path} planted)."""
    tmp_path = tmp_path_factory.mktemp("leaky")
    sources = sorted(bundled_images.glob("*/*.jpg"))[::19]  # every class, not 130 airplanes on blue sky
    root = tmp_path / "images"
    for i, src in enumerate(sources[:60]):
        (root / "train" / src.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(src).save(root / "train" / src.parent.name / f"{i}.png")
    planted = {}
    for i, src in enumerate(sources[60:90]):
        (root / "test" / src.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(src).save(root / "test" / src.parent.name / f"t{i}.png")
    for j, i in enumerate([3, 17, 29, 41, 55]):  # re-encoded copies of train images in test
        src = sources[i]
        name = f"test/{src.parent.name}/copy{j}.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.open(src).save(root / name, quality=70)
        planted[name] = f"train/{src.parent.name}/{i}.png"
    ws = tmp_path / "ws"
    for args in (["scan", root, "-w", ws], ["dedup", "-w", ws, "--across", "split"]):
        done = subprocess.run([sys.executable, "-m", "curate", *map(str, args)], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(planted)} items have a copy in train" in done.stdout
    return ws, planted


def test_curate_dedup_across_split_lists_the_test_images_copied_from_train(leaky):
    ws, planted = leaky
    table = pd.read_parquet(ws / "duplicates_across.parquet")
    paths = pd.read_parquet(ws / "manifest.parquet")["path"]
    assert {paths[i]: paths[c] for i, c in zip(table["id"], table["copy_of"])} == planted


def test_the_duplicates_page_shows_the_copies_across_splits(monkeypatch, leaky):
    from tests.apptest_helpers import assert_clean, open_page, start

    ws, planted = leaky
    at = start(monkeypatch, ws)
    open_page(at, "Duplicates & quality")
    assert_clean(at)
    assert any(f"{len(planted)} items have a copy in train" in e.label for e in at.expander)
