"""The training loop: method-agnostic, budget-aware, resumable.

It knows nothing about any pretext task: it samples batches of cached uint8 images, asks the
MultiTask for losses, steps the optimiser on a warm-up + cosine schedule over the wall-clock
budget, logs JSON lines and checkpoints atomically every few minutes. Each of those jobs is its own
small unit: curate.train.budget (the budget and the clock), .checkpoint (save and resume),
.health_monitor (embedding health), .step_log (train_log.jsonl and the progress report),
.snapshots (the encoder at chosen minutes), .nan_policy (non-finite losses and gradients) and
.cpu_share (a machine shared with another process).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from curate.distributed import InterruptFlag, World, current as current_world
from curate.models import BackboneSpec, build_backbone
from curate.pretext import MultiTask
from curate.progress import Progress
from curate.train.budget import Budget, Clock
from curate.train.checkpoint import CHECKPOINT, Checkpoint, Start, TrainingState, restore, start_logs
from curate.train.config import TrainConfig
from curate.train.cpu_share import CpuShare
from curate.train.ddp import batch_shard, rank_device, step_function
from curate.train.device import autocast_factory, pick_device
from curate.train.health_monitor import HEALTH_LOG, HealthMonitor, HealthProbe, RepresentationCollapsed
from curate.train.nan_policy import MAX_SKIPPED_STEPS, NanPolicy, grads_finite
from curate.train.schedule import warmup_cosine
from curate.train.snapshots import Snapshots, snapshot_file
from curate.train.step_log import STEP_LOG, StepLog
from curate.transforms import to_float

# HealthProbe, RepresentationCollapsed, MAX_SKIPPED_STEPS, grads_finite and snapshot_file live in their
# units and are imported from here too
__all__ = ["TrainResult", "train", "fit_batch_size", "make_optimizer", "training_view_size", "batches",
           "HealthProbe", "RepresentationCollapsed", "MAX_SKIPPED_STEPS", "grads_finite", "snapshot_file"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    backbone: torch.nn.Module
    steps: int
    images_seen: int
    elapsed_s: float
    images_per_s: float
    last_losses: dict
    skipped_steps: int = 0  # updates skipped for non-finite gradients
    health: dict | None = None  # the last embedding-health figures (curate.evaluate.health)
    cpu_share: float = 1.0  # CPU time used over what its threads could have used (< 0.7: a shared machine)
    world_size: int = 1  # processes that trained together (DDP); each took its share of every batch
    batch_size: int = 0  # the global batch trained with: cfg.batch_size, or lower for a small set (fit_batch_size)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]  # frozen teachers are updated by their task, not here
    lr = cfg.lr * cfg.batch_size / 256
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be sgd or adamw, not {cfg.optimizer!r}")


def training_view_size(cfg: TrainConfig, image_size: int) -> int:
    """Side of the views the tasks train on: smaller views cost less per step, and a ResNet's global
    pool lets the encoder embed at full size afterwards (a ViT's position embeddings do not)."""
    if cfg.view_size is None or cfg.view_size == image_size:
        return image_size
    if cfg.backbone.startswith("vit"):
        raise ValueError(f"view_size must equal image_size ({image_size}) for a ViT backbone")
    return cfg.view_size


def batches(ids: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Endless stream of sorted id batches, a fresh permutation per epoch (sorted = faster memmap reads)."""
    while True:
        perm = rng.permutation(ids)
        for start in range(0, len(perm) - batch_size + 1, batch_size):
            yield np.sort(perm[start:start + batch_size])


def fit_batch_size(cfg: TrainConfig, n_images: int) -> TrainConfig:
    """`cfg`, or for fewer than `cfg.batch_size` images a copy whose batch size is the largest power of
    two they fill (at least 2); `cfg` itself is left as it is."""
    if n_images >= cfg.batch_size:
        return cfg
    cfg = dataclasses.replace(cfg, batch_size=max(2, 2 ** int(np.log2(n_images))))
    log.warning("only %d training images: batch size lowered to %d", n_images, cfg.batch_size)
    return cfg


@dataclass
class _Model:
    """What a run trains, on this rank's device, and its optimisation step."""

    world: World
    device: torch.device
    autocast: Callable  # a zero-argument context-manager factory for the forward pass
    state: TrainingState
    forward: Callable  # (images, generator, autocast) -> logs: MultiTask.step_losses, through DDP in a process group
    base_lrs: list[float]  # each parameter group's learning rate at the schedule's peak
    warmup: float  # the share of the budget the learning rate warms up over

    @property
    def params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.state.optimizer.param_groups for p in group["params"]]

    def optimise(self, images: np.ndarray, ids: np.ndarray, generator: torch.Generator, frac: float, nan: NanPolicy,
                 step: int) -> tuple[dict[str, torch.Tensor], bool]:
        """Step `step` on the global batch `ids`, `frac` into the budget: (its losses, whether the weights moved)."""
        s, world = self.state, self.world
        for group, base in zip(s.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * warmup_cosine(frac, self.warmup)
        mine = world.rows(len(ids))  # the whole batch in one process
        batch = to_float(torch.from_numpy(images[ids[mine]]).to(self.device, non_blocking=True))
        with batch_shard(mine, len(ids), world):  # each image augmented as one process would
            logs = self.forward(batch, generator, self.autocast)
        nan.check_loss(logs["loss"], step)
        s.optimizer.zero_grad(set_to_none=True)
        logs["loss"].backward()
        if not nan.update_allowed(self.params, step):
            return logs, False
        s.optimizer.step()
        s.tasks.on_step_end(s.backbone, frac)
        if s.averaged is not None:
            s.averaged.update_parameters(s.backbone)
        return logs, True


def _build(cfg: TrainConfig, image_size: int, world: World) -> _Model:
    device = rank_device(pick_device(cfg.device), world)
    autocast = autocast_factory(device, cfg.precision)
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(BackboneSpec(cfg.backbone, cfg.stem or "small")).to(device)
    tasks = MultiTask(cfg.tasks, backbone, training_view_size(cfg, image_size)).to(device)
    forward = step_function(backbone, tasks, world, device)
    optimizer = make_optimizer(list(backbone.parameters()) + list(tasks.parameters()), cfg)
    # the weights' moving average (Polyak averaging) smooths the last steps' noise out of the exported encoder
    averaged = AveragedModel(backbone, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) \
        if cfg.ema else None
    return _Model(world, device, autocast, TrainingState(backbone, tasks, optimizer, averaged), forward,
                  [g["lr"] for g in optimizer.param_groups], cfg.warmup)


def _health_monitor(images: np.ndarray, train_ids: np.ndarray, cfg: TrainConfig, model: _Model,
                    out_dir: Path) -> HealthMonitor:
    """Rank 0's health monitor (off with cfg.health_minutes 0, and on the other ranks)."""
    probe = HealthProbe(images, train_ids, cfg, training_view_size(cfg, images.shape[1]), model.device) \
        if cfg.health_minutes > 0 and model.world.main else None
    return HealthMonitor(probe, out_dir / HEALTH_LOG, cfg.health_minutes * 60, cfg.stop_on_collapse, model.autocast,
                         out_dir / CHECKPOINT)


def train(images: np.ndarray, train_ids: np.ndarray, cfg: TrainConfig, out_dir: Path, resume: bool = False,
          progress: Progress | None = None) -> TrainResult:
    """Train a backbone with cfg.tasks on images[train_ids] ((N, S, S, 3) uint8, S = cfg.image_size).

    Writes out_dir/checkpoint.pt (resumable state), out_dir/train_log.jsonl (losses) and
    out_dir/health_log.jsonl (embedding health every cfg.health_minutes, curate.evaluate.health) and
    out_dir/snapshots/encoder-{M}min.pt (the encoder after M minutes, for each M in cfg.snapshot_minutes).
    Under torchrun (curate.train.ddp) every rank calls this: each trains on its rows of the same global
    batches, and only rank 0 writes. `cfg` is not changed: the batch size used is TrainResult.batch_size.
    """
    if cfg.minutes is None and cfg.epochs is None:
        raise ValueError("give a budget: minutes or epochs")
    cfg, train_ids, world = fit_batch_size(cfg, len(train_ids)), np.asarray(train_ids), current_world()
    model = _build(cfg, images.shape[1], world)
    health = _health_monitor(images, train_ids, cfg, model, out_dir)
    start = restore(out_dir / CHECKPOINT, model.state, model.device) if resume else Start()
    start_logs([out_dir / STEP_LOG, out_dir / HEALTH_LOG], resume, start, world)
    model.state.backbone.train(), model.state.tasks.train()
    stream = batches(train_ids, cfg.batch_size, start.batch_rng(cfg.seed))
    generator = start.generator(cfg.seed, model.device)
    budget, nan, clock = Budget.of(cfg, len(train_ids)), NanPolicy(), Clock(start.elapsed_s)
    checkpoint, cpu = Checkpoint(out_dir / CHECKPOINT, model.state, cfg, world), CpuShare(torch.get_num_threads())
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshots = Snapshots(out_dir, cfg.snapshot_minutes, start.elapsed_s, cfg.batch_size, world)
    step, elapsed, logs = start.step, start.elapsed_s, {}
    try:
        with StepLog(out_dir / STEP_LOG, cfg.log_every, cfg.batch_size, world, budget, clock, cpu,
                     progress if world.main else None) as step_log, InterruptFlag(world) as sigint:
            while True:
                elapsed = clock.elapsed()
                snapshots.save_due(model.state.exported, step, elapsed)
                frac, interrupted = world.agree(budget.fraction(elapsed, step), sigint.requested)  # ranks stop together
                if interrupted:
                    raise KeyboardInterrupt
                if frac >= 1.0:
                    break
                if health.due():
                    health.check(model.state.backbone, step, elapsed)
                logs, updated = model.optimise(images, next(stream), generator, frac, nan, step)
                if updated:
                    step += 1
                    lr = model.state.optimizer.param_groups[0]["lr"]
                    logs = step_log.after_step(step, elapsed, logs, lr, nan.skipped, health.figures)
                    checkpoint.save_if_due(step, elapsed)
            run_s, logs = clock.run_s(), world.mean(logs)  # measured before the health check and checkpoint write
            elapsed = start.elapsed_s + run_s
            if health.on:
                health.check(model.state.exported, step, elapsed)  # what is exported
    except KeyboardInterrupt:  # Ctrl-C (or the app's Cancel, a SIGINT): a rerun resumes from this step
        checkpoint.save(step, clock.elapsed())
        raise
    except (FloatingPointError, RepresentationCollapsed):  # the NaN policy or the health monitor stopped it
        checkpoint.save(step, elapsed)
        raise
    checkpoint.save(step, elapsed)
    return TrainResult(model.state.exported.eval(), step, step * cfg.batch_size, elapsed, step_log.seen / run_s,
                       {k: float(v.detach()) for k, v in logs.items()}, nan.skipped, health.figures,
                       round(cpu.overall(), 3), world.size, cfg.batch_size)
