"""The trainer on real images: a few steps for each task, resume, export loadable by stock torchvision."""
import json

import numpy as np
import pytest
import torch
import torchvision

from curate.data.cache import image_cache
from curate.data.scan import scan_folder
from curate.pretext import TaskSpec
from curate.train import TrainConfig, train
from curate.train.schedule import warmup_cosine


@pytest.fixture(scope="module")
def cache(small_images, tmp_path_factory):
    manifest, _ = scan_folder(small_images)
    return image_cache(small_images, manifest, 32, tmp_path_factory.mktemp("cache"))


def test_schedule_shape():
    assert warmup_cosine(0.0, 0.1) == 0.0
    assert warmup_cosine(0.05, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(0.1, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(1.0, 0.1) == pytest.approx(0.0)
    assert warmup_cosine(0.55, 0.1) == pytest.approx(0.5)


def test_multitask_training_logs_each_task(cache, tmp_path):
    cfg = TrainConfig(tasks=[TaskSpec("simclr"), TaskSpec("rotation", 0.5)], epochs=0.7, batch_size=32, stem="small")
    result = train(cache, np.arange(len(cache)), cfg, tmp_path)
    assert result.steps == 4
    lines = [json.loads(l) for l in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert {"simclr/loss", "rotation/loss", "rotation/accuracy", "loss", "lr", "images_per_s"} <= set(lines[0])


def test_resume_continues_from_checkpoint(cache, tmp_path):
    cfg = TrainConfig(epochs=0.5, batch_size=32, stem="small")
    first = train(cache, np.arange(len(cache)), cfg, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == first.steps == 3
    log = tmp_path / "train_log.jsonl"
    with open(log, "a") as f:  # a crash after the checkpoint: a row past it, then a torn line
        f.write(json.dumps({"step": 4, "loss": 9.0}) + '\n{"step": 5, "lo')
    longer = TrainConfig(epochs=1.0, batch_size=32, stem="small", log_every=1)
    resumed = train(cache, np.arange(len(cache)), longer, tmp_path, resume=True)
    assert resumed.steps == 6  # 3 more, not 6 more
    rows = [json.loads(line) for line in log.read_text().splitlines()]  # every line parses
    assert [r["step"] for r in rows] == [1, 4, 5, 6] and rows[1]["loss"] != 9.0  # step 4 logged once, anew
    for k, v in torch.load(tmp_path / "checkpoint.pt", weights_only=True)["backbone"].items():
        if v.dtype.is_floating_point and "running" not in k:
            assert not torch.equal(v, state["backbone"][k]) or v.numel() == 1  # weights moved on
            break


@pytest.mark.parametrize("backbone", ["resnet10", "resnet18"])
def test_exported_backbone_loads_into_stock_torchvision(cache, tmp_path, backbone):
    cfg = TrainConfig(epochs=0.2, batch_size=32, stem="small", backbone=backbone)
    result = train(cache, np.arange(len(cache)), cfg, tmp_path)
    torch.save(result.backbone.state_dict(), tmp_path / "encoder.pt")
    # the README's recipe, with plain torchvision
    if backbone == "resnet10":
        model = torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    else:
        model = torchvision.models.resnet18()
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool, model.fc = torch.nn.Identity(), torch.nn.Identity()
    model.load_state_dict(torch.load(tmp_path / "encoder.pt", weights_only=True))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model.eval()(x), result.backbone.eval().float()(x), atol=1e-4)


def test_time_budget_is_respected(cache, tmp_path):
    result = train(cache, np.arange(len(cache)), TrainConfig(minutes=0.1, batch_size=32, stem="small"), tmp_path)
    elapsed = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["elapsed_s"]
    step_s = 32 / result.images_per_s
    # it trains until the 6 s budget is spent, and starts no step after that
    assert 6.0 <= elapsed < 6.0 + 2 * step_s + 1.0


def _nan_gradient(out: torch.Tensor) -> torch.Tensor:
    """Zero in the forward pass, NaN in the backward one (the unselected branch of where() still
    back-propagates 0 * d sqrt(-1)): a finite loss whose gradients are not."""
    return torch.where(out.float() > 1e30, torch.sqrt(-out.float().abs() - 1), 0.0).sum()


def _inject_nan_gradients(monkeypatch, every: int):
    from curate.pretext.rotation import Rotation
    original, calls = Rotation.loss, {"n": 0}

    def loss(self, out, targets):
        losses = original(self, out, targets)
        calls["n"] += 1
        if calls["n"] % every == 0:
            losses["loss"] = losses["loss"] + _nan_gradient(out)
        return losses
    monkeypatch.setattr(Rotation, "loss", loss)


def test_non_finite_gradients_skip_the_update(cache, tmp_path, monkeypatch):
    _inject_nan_gradients(monkeypatch, every=2)
    cfg = TrainConfig(tasks=[TaskSpec("rotation")], epochs=1.0, batch_size=32, stem="small")
    result = train(cache, np.arange(len(cache)), cfg, tmp_path)
    assert (result.steps, result.skipped_steps) == (6, 5)  # every other call poisoned; skips are not steps
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for part in ("backbone", "tasks"):
        assert all(torch.isfinite(v).all() for v in state[part].values() if v.is_floating_point()), part


def test_persistently_non_finite_gradients_stop_training_with_a_checkpoint(cache, tmp_path, monkeypatch):
    _inject_nan_gradients(monkeypatch, every=1)
    cfg = TrainConfig(tasks=[TaskSpec("rotation")], epochs=50.0, batch_size=32, stem="small")
    with pytest.raises(FloatingPointError, match="non-finite for 20 steps in a row"):
        train(cache, np.arange(len(cache)), cfg, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 0
    assert all(torch.isfinite(v).all() for v in state["backbone"].values() if v.is_floating_point())


def test_snapshots_keep_the_encoder_at_the_minutes_asked(cache, tmp_path):
    cfg = TrainConfig(minutes=0.1, batch_size=32, stem="small", snapshot_minutes=[0.05, 0.1, 5.0])
    result = train(cache, np.arange(len(cache)), cfg, tmp_path)
    half = torch.load(tmp_path / "snapshots" / "encoder-0.05min.pt", weights_only=True)
    end = torch.load(tmp_path / "snapshots" / "encoder-0.1min.pt", weights_only=True)
    assert not (tmp_path / "snapshots" / "encoder-5min.pt").exists()  # past the budget: never reached
    assert 3.0 <= half["elapsed_s"] < 6.0 <= end["elapsed_s"] and 0 < half["step"] < end["step"] == result.steps
    final = result.backbone.state_dict()  # the last snapshot is the exported encoder, the first an earlier one
    assert all(torch.equal(end["backbone"][k], v) for k, v in final.items())
    assert not all(torch.equal(half["backbone"][k], v) for k, v in final.items())
