"""curate.train.budget: the share of a minutes or epochs budget spent, the ETA, the progress position."""
import time

import pytest

from curate.train import TrainConfig
from curate.train.budget import Budget, Clock


def test_a_minutes_budget_counts_seconds():
    budget = Budget.of(TrainConfig(minutes=2.0), n_images=1000)
    assert budget == Budget(seconds=120.0, steps=None)
    assert budget.fraction(30.0, step=999) == 0.25
    assert budget.eta_s(30.0, step=5, images_per_s=1.0, batch_size=8) == 90.0
    assert budget.position(30.7, step=5) == (30, 120, "s")


def test_an_epochs_budget_counts_steps():
    budget = Budget.of(TrainConfig(epochs=1.5, batch_size=32), n_images=200)
    assert budget == Budget(seconds=None, steps=9)  # 300 images in whole batches of 32
    assert budget.fraction(1e6, step=3) == pytest.approx(1 / 3)
    assert budget.eta_s(10.0, step=3, images_per_s=64.0, batch_size=32) == 3.0  # 6 steps x 32 / 64
    assert budget.position(5.0, step=12) == (9, 9, "step")  # never past the total
    assert Budget.of(TrainConfig(epochs=0.01, batch_size=32), n_images=10).steps == 1  # at least one step


def test_the_clock_adds_this_run_to_the_time_trained_before():
    clock = Clock(before=100.0)
    time.sleep(0.05)
    assert 0.05 <= clock.run_s() < 5 and clock.elapsed() >= 100.05
