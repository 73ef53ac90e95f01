"""The YAML-driven pipeline runs the steps end to end; presets are validated."""
import json

import pandas as pd
import pytest

from curate.pipeline import STEPS

from pipelines.run_all import PRESETS, load_run_preset


def command_options(argv: list[str]):
    """RunOptions of a `curate` command line, as the CLI builds them."""
    from curate.cli import build_parser
    from curate.cli.commands import run_options

    return run_options(build_parser().parse_args(argv))


def test_every_preset_loads():
    for preset in PRESETS.glob("*.yaml"):
        assert "train" in load_run_preset(preset)


def test_overrides_and_validation(tmp_path):
    preset = load_run_preset(PRESETS / "quick.yaml", ["train.minutes=0.5", "dedup.threshold=0.9"])
    assert preset["train"]["minutes"] == 0.5 and preset["dedup"]["threshold"] == 0.9
    with pytest.raises(ValueError, match="minutez"):
        load_run_preset(PRESETS / "quick.yaml", ["train.minutez=1"])


@pytest.mark.slow
def test_quick_pipeline_on_real_images(quick_run_workspace):
    ws = quick_run_workspace  # run_all with the quick preset (tests/conftest.py)
    sel = pd.read_parquet(ws / "selections/k30.parquet")
    assert len(sel) == 30 and (ws / "projection_umap.npy").exists()
    for step in STEPS:  # every step wrote what it declares
        missing = [f for f in step.writes if not (ws / f).exists()]
        assert not missing, (step.name, missing)
    config = json.loads((ws / "model/config.json").read_text())
    assert config["holdout"]["fraction"] == 0.1 and [t["name"] for t in config["tasks"]] == ["simclr", "rotation"]


def test_the_default_preset_and_curate_run_train_the_same_recipe(small_images, tmp_path):
    """One pipeline: the YAML default and the command resolve to the same training recipe (the default
    recipe for 32 px images, 10% held out since the images carry labels); a preset naming a task gets
    that task's own recipe with its fields on top, as `curate run --task` does."""
    from curate.steps.scan import scan
    from curate.steps.train import train_config
    from pipelines.run_all import preset_options

    ws, _ = scan(small_images, tmp_path / "ws")
    command = train_config(ws, command_options(["run", str(small_images), "-w", str(ws.path)]))
    default = train_config(ws, preset_options(small_images, ws.path, load_run_preset(PRESETS / "default.yaml")))
    assert default == command and command.holdout == 0.1 and command.recipe
    quick = train_config(ws, preset_options(small_images, ws.path, load_run_preset(PRESETS / "quick.yaml")))
    flags = train_config(ws, command_options(["run", str(small_images), "-w", str(ws.path), "--task",
                                              "simclr:1", "--task", "rotation:0.5", "--minutes", "1"]))
    assert quick == flags and [t.name for t in quick.tasks] == ["simclr", "rotation"] and quick.minutes == 1


def test_snapshot_minutes_watch_a_run_without_changing_its_recipe(small_images, tmp_path):
    from curate.steps.scan import scan
    from curate.steps.train import same_recipe, train_config

    ws, _ = scan(small_images, tmp_path / "ws")
    plain = train_config(ws, command_options(["train", str(small_images), "-w", str(ws.path)]))
    watched = train_config(ws, command_options(["train", str(small_images), "-w", str(ws.path),
                                                "--snapshot-minutes", "0.5", "2"]))
    assert watched.snapshot_minutes == [0.5, 2.0] and plain.snapshot_minutes == []
    assert same_recipe(plain.to_dict(), watched.to_dict())  # an encoder trained either way is not retrained
