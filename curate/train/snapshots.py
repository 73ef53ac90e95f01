"""The encoder kept at chosen minutes of training (TrainConfig.snapshot_minutes): a quality curve,
scored later, off the training clock (bench/ssl_quality.py)."""
from __future__ import annotations

from pathlib import Path

import torch

from curate import storage
from curate.distributed import World


def snapshot_file(out_dir: Path, minutes: float) -> Path:
    """Where a run keeps its encoder after `minutes` of training (TrainConfig.snapshot_minutes)."""
    return Path(out_dir) / "snapshots" / f"encoder-{minutes:g}min.pt"


class Snapshots:
    """Saves the encoder once at each of `minutes` not yet reached after `trained_s` seconds (rank 0 writes)."""

    def __init__(self, out_dir: Path, minutes: list[float], trained_s: float, batch_size: int, world: World):
        self.out_dir, self.batch_size, self.world = out_dir, batch_size, world
        self.due = sorted(m for m in minutes if m * 60 > trained_s)

    def save_due(self, model: torch.nn.Module, step: int, elapsed_s: float) -> None:
        """Save `model` for every snapshot minute `elapsed_s` has passed since the last call."""
        while self.due and elapsed_s >= self.due[0] * 60:
            minutes = self.due.pop(0)
            if self.world.main:
                storage.save_torch(snapshot_file(self.out_dir, minutes),
                                   {"backbone": model.state_dict(), "step": step, "elapsed_s": round(elapsed_s, 2),
                                    "images_seen": step * self.batch_size})
