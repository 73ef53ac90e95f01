"""A training run's step log: train_log.jsonl and the progress report, with its ETA.

train_log.jsonl gets a row at step 1 and every `every` steps: {"step", "elapsed_s", "lr",
"images_per_s", "skipped_steps", "cpu_share", <every loss and metric of the step>}, the losses
averaged over the ranks (every rank must call: the mean is a collective; rank 0 writes).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from curate.distributed import World
from curate.progress import Progress, report
from curate.train.budget import Budget, Clock
from curate.train.cpu_share import CpuShare, SharedCpuNotice

STEP_LOG = "train_log.jsonl"


class StepLog:
    """Logs each step taken; a context manager that holds the log file open.

    `batch_size` images per step (the global batch); `progress` (rank 0's, or None) gets after every
    step the budget's position, the loss, images/s, the ETA, the last health figures' effective rank,
    and the CPU share once the run was found sharing the machine.
    """

    def __init__(self, file: Path, every: int, batch_size: int, world: World, budget: Budget, clock: Clock,
                 cpu: CpuShare, progress: Progress | None = None):
        self.path = file if world.main else os.devnull  # one writer: rank 0
        self.every, self.batch_size, self.world, self.budget, self.clock = every, batch_size, world, budget, clock
        self.cpu, self.notice, self.progress = cpu, SharedCpuNotice(cpu), progress
        self.seen = 0  # images this run has trained on (global batches)

    def __enter__(self) -> "StepLog":
        self._fh = open(self.path, "a")
        return self

    def __exit__(self, *exc) -> bool:
        self._fh.close()
        return False

    def after_step(self, step: int, elapsed_s: float, logs: dict[str, torch.Tensor], lr: float, skipped: int,
                   health: dict | None = None) -> dict[str, torch.Tensor]:
        """Log step `step` (just taken, started at `elapsed_s`); the step's `logs`, averaged over the ranks
        when this step is written."""
        self.seen += self.batch_size
        loss, speed = logs["loss"], self.seen / self.clock.run_s()
        if step % self.every == 0 or step == 1:
            logs = self.world.mean(logs)
            entry = {"step": step, "elapsed_s": round(elapsed_s, 2), "lr": lr, "images_per_s": round(speed, 1),
                     "skipped_steps": skipped, "cpu_share": round(self.cpu.sample(), 3),
                     **{k: round(float(v.detach()), 5) for k, v in logs.items()}}
            self.notice.check(self.clock.run_s())
            self._fh.write(json.dumps(entry) + "\n")
            self._fh.flush()
        self._report(step, elapsed_s, speed, loss, health)
        return logs

    def _report(self, step: int, elapsed_s: float, speed: float, loss: torch.Tensor, health: dict | None) -> None:
        if self.progress is None:
            return
        done, total, unit = self.budget.position(elapsed_s, step)
        eta = self.budget.eta_s(elapsed_s, step, speed, self.batch_size)
        report(self.progress, done, total, stage="train", unit=unit, loss=loss.item(), img_s=round(speed),
               eta=f"{eta / 60:.1f}m", **({"rank": round(health["effective_rank"], 1)} if health else {}),
               **({"cpu": round(self.cpu.overall(), 2)} if self.notice.warned else {}))
