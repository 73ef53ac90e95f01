"""Shared fixtures: real images (the bundled CIFAR-10 sample, ../shared data when present) and a
real workspace built once per test session by the same steps the CLI runs."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "data" / "cifar10-sample"
SHARED = REPO.parent / "shared" / "data"


def need_shared(path: Path) -> Path:
    """`path` (under ../shared/data), or skip the test with the reason when the shared data is absent."""
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data beside the checkout); it is present in CI")
    return path


@pytest.fixture(scope="session")
def bundled_images() -> Path:
    """2,000 real 32x32 CIFAR-10 JPEGs in 10 class folders (shipped with the repo)."""
    assert BUNDLED.is_dir(), f"bundled dataset missing at {BUNDLED}"
    return BUNDLED


@pytest.fixture(scope="session")
def caltech_images() -> Path:
    return need_shared(SHARED / "caltech101")


def copy_sample(source: Path, root: Path, classes, per_class: int) -> Path:
    """Copy the first `per_class` JPEGs of each class folder of `source` into `root/<class>/` (mtimes kept)."""
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for f in sorted((source / cls).glob("*.jpg"))[:per_class]:
            shutil.copy2(f, root / cls / f.name)
    return root


@pytest.fixture(scope="session")
def sample_copier():
    """The `copy_sample` helper, for tests that build their own small image folders."""
    return copy_sample


@pytest.fixture(scope="session")
def small_images(tmp_path_factory, bundled_images) -> Path:
    """A 200-image copy (20 per class) of the bundled data, for tests that write into the image folder."""
    classes = sorted(p.name for p in bundled_images.iterdir() if p.is_dir())
    return copy_sample(bundled_images, tmp_path_factory.mktemp("small") / "images", classes, 20)


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory, bundled_images) -> Path:
    """A complete workspace on the bundled data: scan, a short SimCLR run, embed, index, map, dedup,
    and one saved k-center selection named `kcenter_100`. Read-only for tests: copy it to modify."""
    from curate.pretext import TaskSpec
    from curate.steps.dedup import dedup
    from curate.steps.embed import embed
    from curate.steps.index import build_workspace_index
    from curate.steps.map import build_projection
    from curate.steps.scan import scan
    from curate.steps.select import run_selection
    from curate.steps.train import train_workspace
    from curate.train import TrainConfig

    path = tmp_path_factory.mktemp("ws") / "ws"
    ws, _ = scan(bundled_images, path)
    train_workspace(ws, TrainConfig(tasks=[TaskSpec("simclr")], epochs=0.25, batch_size=128, holdout=0.1))
    embed(ws)
    build_workspace_index(ws)
    build_projection(ws)
    dedup(ws)
    run_selection(ws, 100, "kcenter", "kcenter_100")
    return path


@pytest.fixture
def built_workspace_copy(tmp_path, built_workspace):
    """A writable copy of the shared workspace (as a Workspace; checkpoint and cache left out)."""
    import shutil

    from curate.workspace import Workspace
    copy = tmp_path / "ws_copy"
    shutil.copytree(built_workspace, copy, ignore=shutil.ignore_patterns("checkpoint.pt", "cache"))
    return Workspace(copy)


@pytest.fixture(scope="session")
def quick_run_workspace(tmp_path_factory, small_images) -> Path:
    """`pipelines/run_all.py` with the quick preset (one epoch, a k-center selection `k30`) on the
    200-image folder: every declared step of `curate run`, once. Read-only for tests."""
    from pipelines.run_all import PRESETS, load_run_preset, run_all

    preset = load_run_preset(PRESETS / "quick.yaml", ["train.minutes=null", "train.epochs=1", "train.batch_size=64",
                                                      "select=[{strategy: kcenter, n: 30, name: k30}]"])
    path = tmp_path_factory.mktemp("quick_run") / "ws"
    run_all(small_images, path, preset)
    return path
