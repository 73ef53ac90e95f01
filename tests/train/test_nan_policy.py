"""curate.train.nan_policy: a non-finite loss stops at once; non-finite gradients skip the update and
stop the run only after MAX_SKIPPED_STEPS of them in a row."""
import logging

import pytest
import torch

from curate.train.nan_policy import MAX_SKIPPED_STEPS, NanPolicy, grads_finite


def _backward(layer: torch.nn.Linear, poisoned: bool) -> None:
    """A real backward pass; `poisoned`: a finite loss (0 forward) whose gradients are NaN (sqrt of -1 backward)."""
    layer.zero_grad()
    out = layer(torch.ones(2, 3)).sum()
    loss = out.square()
    if poisoned:
        loss = loss + torch.where(out > 1e30, torch.sqrt(-out.abs() - 1), 0.0)
    assert torch.isfinite(loss)
    loss.backward()


def test_gradients_are_checked_for_non_finite_values():
    layer = torch.nn.Linear(3, 1)
    _backward(layer, poisoned=False)
    assert grads_finite(layer.parameters())
    _backward(layer, poisoned=True)
    assert not grads_finite(layer.parameters())


def test_a_non_finite_loss_stops_training():
    policy = NanPolicy()
    policy.check_loss(torch.tensor(1.5), step=3)
    with pytest.raises(FloatingPointError, match="loss became nan at step 7: lower --lr or use --precision fp32"):
        policy.check_loss(torch.tensor(float("nan")), step=7)


def test_skips_count_and_reset_on_a_finite_step_then_stop_after_n_in_a_row(caplog):
    layer, policy = torch.nn.Linear(3, 1), NanPolicy(max_in_a_row=3)
    caplog.set_level(logging.WARNING)
    for step in range(2):
        _backward(layer, poisoned=True)
        assert not policy.update_allowed(layer.parameters(), step)
    assert (policy.skipped, policy.in_a_row) == (2, 2)
    assert "step 1: non-finite gradients, update skipped (2 so far)" in caplog.text
    _backward(layer, poisoned=False)
    assert policy.update_allowed(layer.parameters(), 2)
    assert (policy.skipped, policy.in_a_row) == (2, 0)  # a finite step resets the run of skips, not the total
    for step in (3, 4):
        _backward(layer, poisoned=True)
        assert not policy.update_allowed(layer.parameters(), step)
    _backward(layer, poisoned=True)
    with pytest.raises(FloatingPointError, match="non-finite for 3 steps in a row at step 5"):
        policy.update_allowed(layer.parameters(), 5)
    assert policy.skipped == 5


def test_the_default_gives_up_after_max_skipped_steps():
    layer, policy = torch.nn.Linear(3, 1), NanPolicy()
    _backward(layer, poisoned=True)
    for step in range(MAX_SKIPPED_STEPS - 1):
        assert not policy.update_allowed(layer.parameters(), step)
    with pytest.raises(FloatingPointError, match=f"non-finite for {MAX_SKIPPED_STEPS} steps in a row"):
        policy.update_allowed(layer.parameters(), MAX_SKIPPED_STEPS)
