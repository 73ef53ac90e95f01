"""Pretext-task figures of the trained model on held-out images (rotation, jigsaw, relative position, ...).

Generic over the task registry: each task the model was trained with is rebuilt by name, gets its
head weights back from the training checkpoint (`state["tasks"]` of `model/checkpoint.pt`, the
`MultiTask` state_dict: keys `tasks.<name>.*`), and runs its own `build_views` + forward + `loss`
on images it never trained on. Every scalar its loss dict returns is averaged; a task that defines
`accuracy` (rotation, jigsaw, relative_position) thereby gets a held-out pretext accuracy.

Example:
    >>> scores, notes = pretext_scores(backbone, [TaskSpec("rotation")], state["tasks"], images, rows)
    >>> scores["rotation"]["accuracy"]
"""
from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn as nn

from curate.models import feature_dim
from curate.pretext.base import PretextTask, TaskSpec, build_task
from curate.progress import Progress, report
from curate.transforms import to_float

log = logging.getLogger(__name__)


def rebuild_task(spec: TaskSpec, backbone: nn.Module, task_state: dict[str, torch.Tensor],
                 image_size: int) -> PretextTask:
    """Task `spec.name` with the weights it had at the end of training, in eval mode, on the backbone's device."""
    task = build_task(spec, feature_dim(backbone), image_size)
    task.setup(backbone)  # creates what setup creates in training (e.g. EMA teachers) so every key has a home
    prefix = f"tasks.{spec.name}."
    own = {k[len(prefix):]: v for k, v in task_state.items() if k.startswith(prefix)}
    task.load_state_dict(own)
    return task.to(next(backbone.parameters()).device).eval()


@torch.no_grad()
def task_metrics(task: PretextTask, backbone: nn.Module, images: np.ndarray, rows: np.ndarray, batch_size: int = 256,
                 seed: int = 0) -> dict[str, float]:
    """Image-weighted mean of every scalar in task.loss(...) over images[rows] ((N, S, S, 3) uint8)."""
    device = next(backbone.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    sums: dict[str, float] = {}
    rows = np.asarray(rows)
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        x = to_float(torch.from_numpy(images[idx]).to(device))
        views, targets = task.build_views(x, gen)
        losses = task.loss(task(backbone, views), targets)
        for key, value in losses.items():
            if torch.is_tensor(value) and value.numel() == 1:
                sums[key] = sums.get(key, 0.0) + float(value) * len(idx)
    return {key: total / len(rows) for key, total in sums.items()}


def pretext_scores(backbone: nn.Module, specs: list[TaskSpec], task_state: dict[str, torch.Tensor], images: np.ndarray,
                   rows: np.ndarray, batch_size: int = 256, seed: int = 0,
                   progress: Progress | None = None) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """({task: {"accuracy": ..., "loss": ..., ...}}, {task: why it was skipped}) on held-out images[rows].

    backbone: the trained backbone in eval mode; images at the training resolution.
    """
    scores, notes = {}, {}
    was_training = backbone.training
    backbone.eval()
    try:
        for i, spec in enumerate(specs):
            try:
                task = rebuild_task(spec, backbone, task_state, images.shape[1])
            except (ValueError, RuntimeError, KeyError, TypeError) as err:  # a renamed/changed task: say so
                log.warning("pretext task %s not evaluated: %s", spec.name, err)
                notes[spec.name] = f"could not rebuild it from the checkpoint: {err}"
                continue
            scores[spec.name] = task_metrics(task, backbone, images, rows, batch_size, seed)
            if "accuracy" not in scores[spec.name]:
                notes[spec.name] = "its loss defines no accuracy (losses only)"
            report(progress, i + 1, len(specs), stage="pretext", unit="task")
    finally:
        backbone.train(was_training)
    return scores, notes
