"""Embedding health while training: measured every so often, logged, and a collapse caught.

health_log.jsonl gets one row per measurement: {"step", "elapsed_s", effective_rank, alignment,
uniformity, nn_similarity} (curate.evaluate.health). A collapsed representation is warned about,
or stops the run (`stop_on_collapse`) with RepresentationCollapsed.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from curate.evaluate.health import health, is_collapsed
from curate.train.config import TrainConfig
from curate.transforms import make_views, normalize, siamese_views, to_float

log = logging.getLogger(__name__)

HEALTH_LOG = "health_log.jsonl"


class RepresentationCollapsed(RuntimeError):
    """Training stopped (`stop_on_collapse`) because the embeddings fell onto one direction."""


class HealthProbe:
    """Embedding health on a fixed set of training images, two fixed augmented views each.

    The images and their augmentations are drawn once, so the curve shows the encoder changing,
    not the sample; eval mode, so measuring does not touch BatchNorm's running statistics.
    """

    def __init__(self, images: np.ndarray, train_ids: np.ndarray, cfg: TrainConfig, view_size: int, device):
        rng = np.random.default_rng([cfg.seed, 7])
        ids = np.sort(rng.choice(train_ids, min(cfg.health_images, len(train_ids)), replace=False))
        x = to_float(torch.from_numpy(images[ids]).to(device))
        g = torch.Generator(device=device).manual_seed(cfg.seed + 7)
        views = siamese_views(view_size)
        self.views = [normalize(make_views(x, views, g)) for _ in range(2)]

    @torch.no_grad()
    def __call__(self, backbone: torch.nn.Module, autocast) -> dict:
        backbone.eval()
        with autocast():
            z1, z2 = (backbone(v).float() for v in self.views)
        backbone.train()
        return health(z1, z2).to_dict()


class HealthMonitor:
    """Runs `probe` every `every_s` seconds into `file`; off (never due) without a probe.

    `checkpoint_file` is named in the RepresentationCollapsed message: the caller saves it before the
    exception leaves the run.
    """

    def __init__(self, probe: HealthProbe | None, file: Path, every_s: float, stop_on_collapse: bool, autocast,
                 checkpoint_file: Path):
        self.probe, self.file, self.every_s, self.autocast = probe, file, every_s, autocast
        self.stop_on_collapse, self.checkpoint_file = stop_on_collapse, checkpoint_file
        self.figures: dict | None = None  # the last measurement
        self.last_check: float | None = None  # time.perf_counter() after it

    @property
    def on(self) -> bool:
        return self.probe is not None

    def due(self) -> bool:
        """On, and never measured or measured `every_s` seconds ago or more."""
        return self.on and (self.last_check is None or time.perf_counter() - self.last_check >= self.every_s)

    def check(self, model: torch.nn.Module, step: int, elapsed_s: float) -> dict:
        """Measure `model`, append the row, warn on a collapse (and raise if asked to stop); the figures."""
        h = self.probe(model, self.autocast)
        with open(self.file, "a") as fh:
            fh.write(json.dumps({"step": step, "elapsed_s": round(elapsed_s, 2), **h}) + "\n")
        if is_collapsed(h):
            log.warning("step %d: the representation has collapsed (effective rank %.2f, uniformity %.3f): every "
                        "image gets nearly the same embedding; try another task, a lower --lr or fp32", step,
                        h["effective_rank"], h["uniformity"])
            if self.stop_on_collapse:
                raise RepresentationCollapsed(f"representation collapsed at step {step} (effective rank "
                                              f"{h['effective_rank']:.2f}); checkpoint saved in {self.checkpoint_file}")
        self.figures, self.last_check = h, time.perf_counter()
        return h
