"""What a non-finite number in a training step does.

A non-finite loss stops the run (FloatingPointError). A finite loss can still give non-finite
gradients (e.g. a CPU bf16 kernel writing garbage into the padding taps of a 1x1 feature map): that
update is skipped, as a GradScaler would, and the run stops after MAX_SKIPPED_STEPS in a row. The
caller saves a checkpoint before the error leaves the run.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

# consecutive optimiser steps skipped for non-finite gradients before training gives up
MAX_SKIPPED_STEPS = 20


def grads_finite(params) -> bool:
    """True when every gradient is finite (NaN/inf in any one would poison the weights and momenta)."""
    return all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)


class NanPolicy:
    """Counts the updates skipped for non-finite gradients (`skipped`, and `in_a_row`); raises when the run
    must stop."""

    def __init__(self, max_in_a_row: int = MAX_SKIPPED_STEPS):
        self.max_in_a_row, self.skipped, self.in_a_row = max_in_a_row, 0, 0

    def check_loss(self, loss: torch.Tensor, step: int) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower --lr or use --precision fp32")

    def update_allowed(self, params, step: int) -> bool:
        """After backward: True when `params`' gradients are finite; else the update is skipped (False)."""
        if grads_finite(params):
            self.in_a_row = 0
            return True
        self.skipped, self.in_a_row = self.skipped + 1, self.in_a_row + 1
        log.warning("step %d: non-finite gradients, update skipped (%d so far)", step, self.skipped)
        if self.in_a_row >= self.max_in_a_row:
            raise FloatingPointError(f"gradients non-finite for {self.in_a_row} steps in a row at step "
                                     f"{step}: lower --lr or use --precision fp32")
        return False
