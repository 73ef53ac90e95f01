"""curate.train.health_monitor: health rows written when due, a collapse warned about, and stopped on
only when asked."""
import json
import logging
from contextlib import nullcontext

import numpy as np
import pytest
import torch

from curate.train import TrainConfig
from curate.train.health_monitor import HealthMonitor, HealthProbe, RepresentationCollapsed


@pytest.fixture(scope="module")
def probe():
    images = np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    return HealthProbe(images, np.arange(40), TrainConfig(health_images=32), view_size=16, device=torch.device("cpu"))


def _spread() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 16))


def _collapsed() -> torch.nn.Module:
    """Every image to the same vector: the degenerate end of a collapsing run."""
    model = _spread()
    torch.nn.init.zeros_(model[1].weight)
    torch.nn.init.ones_(model[1].bias)
    return model


def _monitor(probe, tmp_path, every_s=60.0, stop=False) -> HealthMonitor:
    return HealthMonitor(probe, tmp_path / "health_log.jsonl", every_s, stop, nullcontext, tmp_path / "checkpoint.pt")


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_probe_measures_fixed_views_and_leaves_the_model_training(probe):
    model = _spread().train()
    first, again = probe(model, nullcontext), probe(model, nullcontext)
    assert first == again and model.training  # the same images and views each time; train mode given back
    assert first["effective_rank"] > 5 and set(first) >= {"effective_rank", "alignment", "uniformity", "nn_similarity"}


def test_a_check_writes_a_row_and_the_next_waits_its_interval(probe, tmp_path):
    monitor = _monitor(probe, tmp_path, every_s=60.0)
    assert monitor.on and monitor.due() and monitor.figures is None
    figures = monitor.check(_spread(), step=4, elapsed_s=12.345)
    assert not monitor.due()  # measured just now; the next in 60 s
    assert _rows(tmp_path / "health_log.jsonl") == [{"step": 4, "elapsed_s": 12.35, **figures}]
    assert monitor.figures == figures
    assert _monitor(probe, tmp_path, every_s=0.0).due()


def test_without_a_probe_the_monitor_is_off(tmp_path):
    monitor = _monitor(None, tmp_path)
    assert not monitor.on and not monitor.due()


def test_a_collapse_is_warned_about_and_stops_the_run_only_when_asked(probe, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    warn = _monitor(probe, tmp_path / "warn")
    (tmp_path / "warn").mkdir()
    figures = warn.check(_collapsed(), step=2, elapsed_s=1.0)
    assert "step 2: the representation has collapsed" in caplog.text and warn.figures == figures
    (tmp_path / "stop").mkdir()
    stop = _monitor(probe, tmp_path / "stop", stop=True)
    with pytest.raises(RepresentationCollapsed, match=r"collapsed at step 3 .*checkpoint saved in .*checkpoint.pt"):
        stop.check(_collapsed(), step=3, elapsed_s=2.0)
    assert _rows(tmp_path / "stop" / "health_log.jsonl")[0]["step"] == 3  # the collapsed row is logged first
    assert stop.figures is None
