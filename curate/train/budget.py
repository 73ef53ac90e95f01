"""What a training run may spend and what it has spent: its budget (wall-clock minutes or epochs) and its clock.

    budget = Budget.of(cfg, n_images)
    clock = Clock(before=checkpoint_elapsed_s)  # a resumed run goes on from its checkpoint's time
    frac = budget.fraction(clock.elapsed(), step)  # >= 1.0: the run is over; it drives the schedule
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from curate.train.config import TrainConfig


@dataclass(frozen=True)
class Budget:
    """`seconds` of training (TrainConfig.minutes), else `steps` (TrainConfig.epochs over the images)."""

    seconds: float | None
    steps: int | None

    @classmethod
    def of(cls, cfg: TrainConfig, n_images: int) -> "Budget":
        seconds = cfg.minutes * 60 if cfg.minutes is not None else None
        return cls(seconds, None if seconds else max(1, int(cfg.epochs * n_images / cfg.batch_size)))

    def fraction(self, elapsed_s: float, step: int) -> float:
        """The share of the budget spent after `elapsed_s` seconds of training and `step` steps."""
        return elapsed_s / self.seconds if self.seconds else step / self.steps

    def eta_s(self, elapsed_s: float, step: int, images_per_s: float, batch_size: int) -> float:
        """Seconds of training left: the time budget's rest, or the steps left at the current speed."""
        if self.seconds:
            return self.seconds - elapsed_s
        return (self.steps - step) * batch_size / max(images_per_s, 1e-9)

    def position(self, elapsed_s: float, step: int) -> tuple[int, int, str]:
        """(done, total, unit) for a progress bar: seconds of a time budget, steps of an epoch budget."""
        if self.seconds:
            return int(elapsed_s), int(self.seconds), "s"
        return min(step, self.steps), self.steps, "step"


class Clock:
    """A run's training time: `before` (what earlier runs of it trained, from the checkpoint) plus this run's."""

    def __init__(self, before: float = 0.0):
        self.before, self.start = before, time.perf_counter()

    def run_s(self) -> float:
        """Seconds since this run started (never 0: it divides)."""
        return max(1e-9, time.perf_counter() - self.start)

    def elapsed(self) -> float:
        return self.before + self.run_s()
