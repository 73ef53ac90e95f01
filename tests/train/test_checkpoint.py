"""curate.train.checkpoint: a checkpoint saved then restored gives back the step, the training time,
the weights, the optimiser's state and the moving average; resumed logs keep the rows up to it."""
import json

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from curate.distributed import World
from curate.train import TrainConfig
from curate.train.checkpoint import Checkpoint, Start, TrainingState, restore, start_logs


def _state(seed: int, ema: bool = True) -> TrainingState:
    torch.manual_seed(seed)
    backbone, tasks = torch.nn.Linear(6, 4), torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(list(backbone.parameters()) + list(tasks.parameters()), lr=0.1)
    averaged = AveragedModel(backbone, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True) if ema else None
    return TrainingState(backbone, tasks, optimizer, averaged)


def _train_steps(state: TrainingState, steps: int) -> None:
    for _ in range(steps):
        state.optimizer.zero_grad()
        state.tasks(state.backbone(torch.randn(8, 6))).square().mean().backward()
        state.optimizer.step()
        state.averaged.update_parameters(state.backbone)


def test_a_saved_checkpoint_restores_step_time_weights_optimizer_and_average(tmp_path):
    trained = _state(seed=0)
    _train_steps(trained, 3)
    cfg = TrainConfig(batch_size=8)
    Checkpoint(tmp_path / "checkpoint.pt", trained, cfg, World()).save(step=3, elapsed_s=12.5)

    fresh = _state(seed=1)
    start = restore(tmp_path / "checkpoint.pt", fresh, torch.device("cpu"))
    assert start == Start(step=3, elapsed_s=12.5, resumed=True)
    for a, b in ((trained.backbone, fresh.backbone), (trained.tasks, fresh.tasks), (trained.averaged, fresh.averaged)):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    adam_trained, adam_fresh = trained.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert adam_fresh["state"][0]["step"] == 3
    assert torch.equal(adam_fresh["state"][0]["exp_avg"], adam_trained["state"][0]["exp_avg"])
    assert int(fresh.averaged.n_averaged) == 3
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"]["batch_size"] == 8
    plain = _state(0, ema=False)
    assert fresh.exported is fresh.averaged.module and plain.exported is plain.backbone  # what a run exports


def test_no_checkpoint_is_a_new_start_and_a_resume_draws_anew_but_reproducibly(tmp_path):
    assert restore(tmp_path / "checkpoint.pt", _state(0), torch.device("cpu")) == Start()
    new, resumed = Start(), Start(step=5, elapsed_s=1.0, resumed=True)
    assert new.batch_rng(3).random() == np.random.default_rng(3).random()
    assert resumed.batch_rng(3).random() == np.random.default_rng([3, 5]).random()
    assert resumed.batch_rng(3).random() != new.batch_rng(3).random()
    assert torch.equal(resumed.generator(3, torch.device("cpu")).get_state(), torch.Generator().manual_seed(8).get_state())


def test_only_rank_0_writes_and_periodic_saves_wait_their_interval(tmp_path):
    state = _state(0)
    Checkpoint(tmp_path / "rank1.pt", state, TrainConfig(), World(rank=1, size=2)).save(1, 1.0)
    assert not (tmp_path / "rank1.pt").exists()
    every_10_min = Checkpoint(tmp_path / "a.pt", state, TrainConfig(checkpoint_minutes=10), World())
    every_10_min.save_if_due(1, 1.0)
    assert not (tmp_path / "a.pt").exists()
    always = Checkpoint(tmp_path / "b.pt", state, TrainConfig(checkpoint_minutes=0), World())
    always.save_if_due(2, 2.0)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 2


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("world", [World(), World(rank=1, size=2)])
def test_logs_are_trimmed_to_the_checkpoint_on_resume_and_cleared_on_a_new_run(tmp_path, world):
    log, health = tmp_path / "train_log.jsonl", tmp_path / "health_log.jsonl"
    written = "".join(json.dumps({"step": s}) + "\n" for s in (0, 1, 2, 3)) + '{"step": 4, "lo'  # a torn last line
    for file in (log, health):
        file.write_text(written)
    start_logs([log, health], resume=True, start=Start(step=2, elapsed_s=9.0, resumed=True), world=world)
    if not world.main:  # other ranks leave the files alone
        assert log.read_text() == written
        return
    assert [r["step"] for r in _rows(log)] == [r["step"] for r in _rows(health)] == [0, 1, 2]
    start_logs([log, health], resume=True, start=Start(), world=world)  # --resume without a checkpoint: appends
    assert len(_rows(log)) == 3
    start_logs([log, health], resume=False, start=Start(), world=world)
    assert not log.exists() and not health.exists()
