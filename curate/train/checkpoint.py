"""A training run's checkpoint, out_dir/checkpoint.pt, and resuming from it.

It holds the backbone, the tasks, the optimiser, the weights' moving average (TrainConfig.ema, when
on), the step, the training time so far and the run's configuration (curate.steps.train compares
recipes with it). Rank 0 writes it atomically (curate.storage); on --resume every rank reads it.
A resumed run draws a new but reproducible batch order: `default_rng([seed, step])`, and its
augmentations from a generator seeded `seed + step`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from curate import storage
from curate.distributed import World
from curate.train.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainingState:
    """What a checkpoint saves and a resume restores."""

    backbone: nn.Module
    tasks: nn.Module
    optimizer: torch.optim.Optimizer
    averaged: AveragedModel | None = None  # the weights' moving average (TrainConfig.ema > 0)

    @property
    def exported(self) -> nn.Module:
        """The encoder a run hands out: the moving average of the weights when there is one."""
        return self.backbone if self.averaged is None else self.averaged.module


@dataclass(frozen=True)
class Start:
    """Where a run starts: step 0 of a new run, or a checkpoint's step and training time."""

    step: int = 0
    elapsed_s: float = 0.0
    resumed: bool = False

    def batch_rng(self, seed: int) -> np.random.Generator:
        """The batch order's generator (a resumed run's is new, but reproducible)."""
        return np.random.default_rng([seed, self.step]) if self.resumed else np.random.default_rng(seed)

    def generator(self, seed: int, device: torch.device) -> torch.Generator:
        """The augmentations' generator."""
        return torch.Generator(device=device).manual_seed(seed + self.step)


def restore(file: Path, state: TrainingState, device: torch.device) -> Start:
    """Load the checkpoint `file` into `state`; where the run goes on (a new run's Start without a file)."""
    if not file.exists():
        return Start()
    saved = torch.load(file, map_location=device, weights_only=True)
    state.backbone.load_state_dict(saved["backbone"])
    state.tasks.load_state_dict(saved["tasks"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.averaged is not None and "averaged" in saved:
        state.averaged.load_state_dict(saved["averaged"])
    log.info("resumed from step %d (%.1f min trained)", saved["step"], saved["elapsed_s"] / 60)
    return Start(saved["step"], saved["elapsed_s"], resumed=True)


def start_logs(files: list[Path], resume: bool, start: Start, world: World) -> None:
    """Ready a run's JSON-lines logs (rows with a "step") for appending; rank 0 only.

    A resumed run keeps the rows up to its checkpoint's step: rows logged after the checkpoint are
    logged again from it, and a torn line goes. A new run starts them afresh. A --resume without a
    checkpoint appends to whatever is there.
    """
    if not world.main:
        return
    for file in files:
        if start.resumed:
            storage.keep_jsonl(file, lambda row: row.get("step", 0) <= start.step)
        elif not resume:
            file.unlink(missing_ok=True)


class Checkpoint:
    """Saves `state` to `file`: on demand, and every `cfg.checkpoint_minutes` (counted from its creation)."""

    def __init__(self, file: Path, state: TrainingState, cfg: TrainConfig, world: World):
        self.file, self.state, self.cfg, self.world = file, state, cfg, world
        self.every_s, self.last_save = cfg.checkpoint_minutes * 60, time.perf_counter()

    def save(self, step: int, elapsed_s: float) -> None:
        """Write the checkpoint after `step` steps and `elapsed_s` seconds of training (rank 0; a no-op elsewhere)."""
        if not self.world.main:
            return
        s = self.state
        storage.save_torch(self.file, {"backbone": s.backbone.state_dict(), "tasks": s.tasks.state_dict(),
                                       "optimizer": s.optimizer.state_dict(), "step": step, "elapsed_s": elapsed_s,
                                       **({"averaged": s.averaged.state_dict()} if s.averaged is not None else {}),
                                       "config": self.cfg.to_dict()})

    def save_if_due(self, step: int, elapsed_s: float) -> None:
        """Save when more than `every_s` seconds have passed since the last periodic save."""
        if time.perf_counter() - self.last_save > self.every_s:
            self.save(step, elapsed_s)
            self.last_save = time.perf_counter()
