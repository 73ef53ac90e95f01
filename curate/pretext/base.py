"""The pretext-task contract and multi-task combination.

A task owns its heads (it is an nn.Module); the backbone is shared and passed in. Per step:
  views, targets = task.build_views(images, generator)   # images: (B, 3, H, W) float in [0, 1]
  out = task(backbone, views)                             # heads applied to backbone features
  losses = task.loss(out, targets)                        # dict with "loss" (+ metrics)
  task.on_step_end(backbone, progress)                    # optional, e.g. EMA teachers
`task.setup(backbone)` runs once before training (e.g. to copy the backbone into a frozen teacher;
parameters with requires_grad=False are not optimised). A new task is one file: a subclass with a
`Config` dataclass, decorated `@TASKS.register(name)`, plus its preset `presets/<name>.yaml`.
For DDP runs (curate.train.ddp): draw per-image randomness with curate.transforms.draws, and compute a
loss over the batch (negatives, batch statistics) on `curate.distributed.gather`ed embeddings.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn

from curate.registry import Registry

TASKS: Registry = Registry("pretext task")


class PretextTask(nn.Module):
    """Base class: subclasses set `Config` and implement build_views / forward / loss."""

    @dataclass
    class Config:
        pass

    name: ClassVar[str] = ""

    def __init__(self, cfg: Any, feature_dim: int, image_size: int):
        super().__init__()
        self.cfg, self.feature_dim, self.image_size = cfg, feature_dim, image_size

    def build_views(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], Any]:
        raise NotImplementedError

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> Any:
        raise NotImplementedError

    def loss(self, out: Any, targets: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def setup(self, backbone: nn.Module) -> None:
        """Called once with the shared backbone before training starts."""

    def on_step_end(self, backbone: nn.Module, progress: float) -> None:
        """Called after each optimiser step with training progress in [0, 1]."""


class TwoViewTask(PretextTask):
    """Base of the siamese tasks: two augmented views per image (`self.views`), both through the
    backbone and `self.projector` in one batch; `forward` returns the two projections (B, D) each."""

    def build_views(self, images: torch.Tensor, generator: torch.Generator | None = None):
        from curate.transforms import make_views, normalize

        return [normalize(make_views(images, self.views, generator)) for _ in range(2)], None

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]):
        return self.projector(backbone(torch.cat(views))).chunk(2)


@dataclass(frozen=True)
class TaskSpec:
    """A task name, its weight in the total loss, and overrides of its Config fields."""

    name: str
    weight: float = 1.0
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_task(text: str) -> TaskSpec:
    """'simclr' or 'rotation:0.5' -> TaskSpec (the CLI's --task syntax)."""
    name, _, weight = text.partition(":")
    name = name.strip()
    TASKS.get(name)  # fail early with the list of valid names
    try:
        w = float(weight) if weight else 1.0
    except ValueError:
        raise ValueError(f"bad task weight in {text!r}: use NAME or NAME:WEIGHT, e.g. rotation:0.5") from None
    if w <= 0:
        raise ValueError(f"task weight must be positive in {text!r}")
    return TaskSpec(name, w)


def build_task(spec: TaskSpec, feature_dim: int, image_size: int) -> PretextTask:
    cls = TASKS.get(spec.name)
    known = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(spec.params) - known
    if unknown:
        raise ValueError(f"task {spec.name!r} has no parameter(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(cls.Config(**spec.params), feature_dim, image_size)


class MultiTask(nn.Module):
    """Weighted sum of pretext tasks sharing one backbone; logs every task's own losses."""

    def __init__(self, specs: list[TaskSpec], backbone: nn.Module, image_size: int):
        super().__init__()
        from curate.models import feature_dim  # here: models import nothing from pretext, keep it so

        if not specs:
            raise ValueError("at least one pretext task is needed")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"a task is listed twice: {names}")
        self.weights = {s.name: s.weight for s in specs}
        dim = feature_dim(backbone)
        self.tasks = nn.ModuleDict({s.name: build_task(s, dim, image_size) for s in specs})
        for task in self.tasks.values():
            task.setup(backbone)

    def step_losses(self, backbone: nn.Module, images: torch.Tensor, generator=None, autocast=None) -> dict[str, torch.Tensor]:
        """Total weighted loss under "loss", each task's figures under "<task>/<key>"."""
        total, logs = 0.0, {}
        for name, task in self.tasks.items():
            views, targets = task.build_views(images, generator)
            with autocast() if autocast else _null():
                out = task(backbone, views)
            losses = task.loss(out, targets)
            total = total + self.weights[name] * losses["loss"]
            logs.update({f"{name}/{k}": v.detach() for k, v in losses.items()})
        logs["loss"] = total
        return logs

    def on_step_end(self, backbone: nn.Module, progress: float) -> None:
        for task in self.tasks.values():
            task.on_step_end(backbone, progress)


class _null:
    def __enter__(self): return None
    def __exit__(self, *exc): return False
