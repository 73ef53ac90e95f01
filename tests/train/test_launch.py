"""The DDP launcher as a driver beside the pipeline: where it takes the train step's place, and that it
decides as the train step does (a finished recipe is not trained again, so no torchrun starts)."""
import dataclasses
import shutil

import pytest

from curate.pipeline import STEPS
from curate.steps.options import RunOptions
from curate.train.launch import launch, with_ddp
from curate.workspace import Workspace


def test_the_launcher_takes_the_train_steps_place_only_with_nproc():
    assert with_ddp(STEPS, RunOptions()) == STEPS
    one_node = with_ddp(STEPS, RunOptions(nproc=2))
    assert [s.name for s in one_node] == [s.name for s in STEPS]
    assert [s.run for s in one_node if s.name == "train"] == [launch]
    assert all(a.run is b.run for a, b in zip(one_node, STEPS) if a.name != "train")
    several = with_ddp(STEPS, RunOptions(nproc=2, nnodes="2"))  # rank 0 scans the shared workspace, not a launcher
    assert [s.name for s in several] == [s.name for s in STEPS if s.name != "scan"]


@pytest.mark.slow
def test_a_finished_recipe_is_skipped_without_starting_torchrun(quick_run_workspace, tmp_path):
    from pipelines.run_all import PRESETS, load_run_preset, preset_options

    ws = Workspace(shutil.copytree(quick_run_workspace, tmp_path / "ws", ignore=shutil.ignore_patterns("cache")))
    preset = load_run_preset(PRESETS / "quick.yaml", ["train.minutes=null", "train.epochs=1", "train.batch_size=64"])
    options = dataclasses.replace(preset_options(ws.root, ws.path, preset), nproc=2)
    encoder = ws.encoder_file.read_bytes()
    summary = launch(ws, options)
    assert summary.skipped and "trained with this recipe" in summary.skipped
    assert ws.encoder_file.read_bytes() == encoder and not ws.cache_dir.exists()
