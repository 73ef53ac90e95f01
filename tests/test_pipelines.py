"""The YAML-driven pipeline runs the steps end to end; presets are validated."""
import pandas as pd
import pytest

from pipelines.run_all import PRESETS, load_preset, run_all


def test_every_preset_loads():
    for preset in PRESETS.glob("*.yaml"):
        assert "train" in load_preset(preset)


def test_overrides_and_validation(tmp_path):
    preset = load_preset(PRESETS / "quick.yaml", ["train.minutes=0.5", "dedup.threshold=0.9"])
    assert preset["train"]["minutes"] == 0.5 and preset["dedup"]["threshold"] == 0.9
    with pytest.raises(ValueError, match="minutez"):
        load_preset(PRESETS / "quick.yaml", ["train.minutez=1"])


@pytest.mark.slow
def test_quick_pipeline_on_real_images(small_images, tmp_path):
    preset = load_preset(PRESETS / "quick.yaml", ["train.minutes=null", "train.epochs=1", "train.batch_size=64",
                                                  "select=[{strategy: kcenter, n: 30, name: k30}]"])
    run_all(small_images, tmp_path / "ws", preset)
    sel = pd.read_parquet(tmp_path / "ws/selections/k30.parquet")
    assert len(sel) == 30 and (tmp_path / "ws/projection_umap.npy").exists()
