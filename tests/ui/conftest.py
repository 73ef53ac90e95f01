"""Item workspaces for the app tests: objects from COCO128 boxes, frames from short ASL clips. Built once
per test session by the library's steps (a few seconds of training, a PCA map) and shared read-only."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED, need_shared
COCO128 = SHARED / "coco128-detect"
ASL = SHARED / "videos" / "asl_gestures"
CLIPS = ("again", "bird", "book")


def _embed_and_map(ws, model=None) -> None:
    from curate.steps.embed import embed
    from curate.steps.index import build_workspace_index
    from curate.steps.map import build_projection

    embed(ws, model=model)
    build_workspace_index(ws)
    build_projection(ws, "pca")  # UMAP's first call compiles for 30 s: PCA is the map of a small set anyway


@pytest.fixture(scope="session")
def object_workspace(tmp_path_factory) -> Path:
    """12 COCO128 images with their YOLO boxes (54 objects): kinds image and object. Read-only."""
    from curate.pretext import TaskSpec
    from curate.steps.scan import scan
    from curate.steps.train import train_workspace
    from curate.train import TrainConfig

    source = need_shared(COCO128)
    base = tmp_path_factory.mktemp("objects")
    images, labels = base / "coco" / "images" / "train2017", base / "coco" / "labels" / "train2017"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for f in sorted((source / "images" / "train2017").glob("*.jpg"))[:12]:
        shutil.copy2(f, images / f.name)
        label = source / "labels" / "train2017" / f"{f.stem}.txt"
        if label.exists():
            shutil.copy2(label, labels / label.name)
    shutil.copy2(source / "data.yaml", base / "coco" / "data.yaml")
    ws, _ = scan(base / "coco", base / "ws", annotations=base / "coco" / "data.yaml")
    train_workspace(ws, TrainConfig(tasks=[TaskSpec("simclr")], epochs=0.2, batch_size=32, image_size=32,
                                    view_size=32, health_minutes=0))
    _embed_and_map(ws)
    return ws.path


@pytest.fixture(scope="session")
def frame_workspace(tmp_path_factory, object_workspace) -> Path:
    """Three short ASL clips sampled at 2 frames a second, plus two still images (so that the kind switch
    has a choice), embedded with the object workspace's encoder. Read-only."""
    from curate.data.frames import FrameSampling
    from curate.steps.scan import scan
    from curate.workspace import Workspace

    need_shared(ASL)
    base = tmp_path_factory.mktemp("frames")
    (base / "media").mkdir()
    for name in CLIPS:
        shutil.copy2(ASL / f"{name}.mkv", base / "media" / f"{name}.mkv")
    for f in sorted((COCO128 / "images" / "train2017").glob("*.jpg"))[:2]:
        shutil.copy2(f, base / "media" / f.name)
    ws, _ = scan(base / "media", base / "ws", sampling=FrameSampling(fps=2, max_frames=6))
    _embed_and_map(ws, model=Workspace(object_workspace).encoder_file)
    return ws.path
