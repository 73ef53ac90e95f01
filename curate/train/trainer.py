"""The training loop: method-agnostic, budget-aware, resumable.

It knows nothing about any pretext task: it samples batches of cached uint8 images, asks the
MultiTask for losses, steps the optimiser on a warm-up + cosine schedule over the wall-clock
budget, logs JSON lines and checkpoints atomically every few minutes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from curate import storage
from curate.distributed import InterruptFlag, current as current_world
from curate.evaluate.health import health, is_collapsed
from curate.models import BackboneSpec, build_backbone
from curate.pretext import MultiTask
from curate.progress import Progress, report
from curate.train.config import TrainConfig
from curate.train.cpu_share import SHARED_BELOW, CpuShare
from curate.train.ddp import batch_shard, rank_device, step_function
from curate.train.device import autocast_factory, pick_device
from curate.train.schedule import warmup_cosine
from curate.transforms import make_views, normalize, siamese_views, to_float

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


@contextlib.contextmanager
def _checkpoint_on_interrupt(save):
    """Ctrl-C (or the app's Cancel, a SIGINT) saves the current step before stopping: a rerun resumes there."""
    try:
        yield
    except KeyboardInterrupt:
        save()
        raise


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


# consecutive optimiser steps skipped for non-finite gradients before training gives up
MAX_SKIPPED_STEPS = 20


def grads_finite(params) -> bool:
    """True when every gradient is finite (NaN/inf in any one would poison the weights and momenta)."""
    return all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)


def batches(ids: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Endless stream of sorted id batches, a fresh permutation per epoch (sorted = faster memmap reads)."""
    while True:
        perm = rng.permutation(ids)
        for start in range(0, len(perm) - batch_size + 1, batch_size):
            yield np.sort(perm[start:start + batch_size])


def snapshot_file(out_dir: Path, minutes: float) -> Path:
    """Where a run keeps its encoder after `minutes` of training (TrainConfig.snapshot_minutes)."""
    return Path(out_dir) / "snapshots" / f"encoder-{minutes:g}min.pt"


def train(images: np.ndarray, train_ids: np.ndarray, cfg: TrainConfig, out_dir: Path, resume: bool = False,
          progress: Progress | None = None) -> TrainResult:
    """Train a backbone with cfg.tasks on images[train_ids] ((N, S, S, 3) uint8, S = cfg.image_size).

    Writes out_dir/checkpoint.pt (resumable state), out_dir/train_log.jsonl (losses) and
    out_dir/health_log.jsonl (embedding health every cfg.health_minutes, curate.evaluate.health) and
    out_dir/snapshots/encoder-{M}min.pt (the encoder after M minutes, for each M in cfg.snapshot_minutes).
    Under torchrun (curate.train.ddp) every rank calls this: each trains on its rows of the same global
    batches, and only rank 0 writes.
    """
    if cfg.minutes is None and cfg.epochs is None:
        raise ValueError("give a budget: minutes or epochs")
    if len(train_ids) < cfg.batch_size:
        cfg.batch_size = max(2, 2 ** int(np.log2(len(train_ids))))
        log.warning("only %d training images: batch size lowered to %d", len(train_ids), cfg.batch_size)
    world = current_world()
    progress = progress if world.main else None  # one progress bar per run
    device = rank_device(pick_device(cfg.device), world)
    autocast = autocast_factory(device, cfg.precision)
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(BackboneSpec(cfg.backbone, cfg.stem or "small")).to(device)
    tasks = MultiTask(cfg.tasks, backbone, training_view_size(cfg, images.shape[1])).to(device)
    forward = step_function(backbone, tasks, world, device)  # DDP in a process group, else tasks.step_losses
    optimizer = make_optimizer(list(backbone.parameters()) + list(tasks.parameters()), cfg)
    # the weights' moving average (Polyak averaging) smooths the last steps' noise out of the exported encoder
    averaged = AveragedModel(backbone, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    probe = HealthProbe(images, np.asarray(train_ids), cfg, training_view_size(cfg, images.shape[1]), device) \
        if cfg.health_minutes > 0 and world.main else None
    budget_s = cfg.minutes * 60 if cfg.minutes is not None else None
    total_steps = None if budget_s else max(1, int(cfg.epochs * len(train_ids) / cfg.batch_size))

    ckpt_file, log_file, health_file = out_dir / "checkpoint.pt", out_dir / "train_log.jsonl", out_dir / "health_log.jsonl"
    step, elapsed_before, rng = 0, 0.0, np.random.default_rng(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    if resume and ckpt_file.exists():
        state = torch.load(ckpt_file, map_location=device, weights_only=True)
        backbone.load_state_dict(state["backbone"])
        tasks.load_state_dict(state["tasks"])
        optimizer.load_state_dict(state["optimizer"])
        if averaged is not None and "averaged" in state:
            averaged.load_state_dict(state["averaged"])
        step, elapsed_before = state["step"], state["elapsed_s"]
        rng = np.random.default_rng([cfg.seed, step])  # a new but reproducible batch order
        generator.manual_seed(cfg.seed + step)
        log.info("resumed from step %d (%.1f min trained)", step, elapsed_before / 60)
        if world.main:  # rows logged after the checkpoint are logged again from it; a torn line goes
            for file in (log_file, health_file):
                storage.keep_jsonl(file, lambda row: row.get("step", 0) <= step)
    elif not resume and world.main:
        log_file.unlink(missing_ok=True)
        health_file.unlink(missing_ok=True)

    def save_checkpoint(elapsed: float) -> None:
        if not world.main:
            return
        storage.save_torch(ckpt_file, {"backbone": backbone.state_dict(), "tasks": tasks.state_dict(),
                                       "optimizer": optimizer.state_dict(), "step": step, "elapsed_s": elapsed,
                                       **({"averaged": averaged.state_dict()} if averaged is not None else {}),
                                       "config": cfg.to_dict()})

    backbone.train(), tasks.train()
    stream = batches(np.asarray(train_ids), cfg.batch_size, rng)
    start, last_ckpt, logs, seen_this_run = time.perf_counter(), time.perf_counter(), {}, 0
    skipped, skipped_in_a_row, last_health, figures = 0, 0, None, None
    cpu, warned_shared = CpuShare(torch.get_num_threads()), False
    out_dir.mkdir(parents=True, exist_ok=True)

    def check_health(elapsed: float, model: torch.nn.Module) -> dict:
        h = probe(model, autocast)
        with open(health_file, "a") as fh:
            fh.write(json.dumps({"step": step, "elapsed_s": round(elapsed, 2), **h}) + "\n")
        if is_collapsed(h):
            log.warning("step %d: the representation has collapsed (effective rank %.2f, uniformity %.3f): every "
                        "image gets nearly the same embedding; try another task, a lower --lr or fp32", step,
                        h["effective_rank"], h["uniformity"])
            if cfg.stop_on_collapse:
                save_checkpoint(elapsed)
                raise RepresentationCollapsed(f"representation collapsed at step {step} (effective rank "
                                              f"{h['effective_rank']:.2f}); checkpoint saved in {ckpt_file}")
        return h

    snapshots_due = sorted(m for m in cfg.snapshot_minutes if m * 60 > elapsed_before)

    def save_snapshots(elapsed: float) -> None:
        """The encoder as it stands at each snapshot minute passed (scored later, off the training clock)."""
        while snapshots_due and elapsed >= snapshots_due[0] * 60:
            minutes = snapshots_due.pop(0)
            if world.main:
                model = backbone if averaged is None else averaged.module
                storage.save_torch(snapshot_file(out_dir, minutes),
                                   {"backbone": model.state_dict(), "step": step, "elapsed_s": round(elapsed, 2),
                                    "images_seen": step * cfg.batch_size})

    keep_on_interrupt = _checkpoint_on_interrupt(lambda: save_checkpoint(elapsed_before + time.perf_counter() - start))
    log_target = log_file if world.main else os.devnull  # one writer: rank 0
    with open(log_target, "a") as log_fh, keep_on_interrupt, InterruptFlag(world) as sigint:
        while True:
            run_s = time.perf_counter() - start
            elapsed = elapsed_before + run_s
            save_snapshots(elapsed)
            frac = elapsed / budget_s if budget_s else step / total_steps
            frac, interrupted = world.agree(frac, sigint.requested)  # every rank stops at the same step
            if interrupted:
                raise KeyboardInterrupt
            if frac >= 1.0:
                break
            health_due = last_health is None or time.perf_counter() - last_health >= cfg.health_minutes * 60
            if probe is not None and health_due:
                figures, last_health = check_health(elapsed, backbone), time.perf_counter()
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * warmup_cosine(frac, cfg.warmup)
            ids = next(stream)
            mine = world.rows(len(ids))  # the whole batch in one process
            batch = to_float(torch.from_numpy(images[ids[mine]]).to(device, non_blocking=True))
            with batch_shard(mine, len(ids), world):  # each image augmented as one process would
                logs = forward(batch, generator, autocast)
            loss = logs["loss"]
            if not torch.isfinite(loss):
                save_checkpoint(elapsed)
                raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower --lr or use --precision fp32")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # A finite loss can still give non-finite gradients (e.g. a CPU bf16 kernel writing garbage
            # into the padding taps of a 1x1 feature map): skip that update, as a GradScaler would.
            if not grads_finite(params):
                skipped, skipped_in_a_row = skipped + 1, skipped_in_a_row + 1
                log.warning("step %d: non-finite gradients, update skipped (%d so far)", step, skipped)
                if skipped_in_a_row >= MAX_SKIPPED_STEPS:
                    save_checkpoint(elapsed)
                    raise FloatingPointError(f"gradients non-finite for {skipped_in_a_row} steps in a row at step "
                                             f"{step}: lower --lr or use --precision fp32")
                continue
            skipped_in_a_row = 0
            optimizer.step()
            tasks.on_step_end(backbone, frac)
            if averaged is not None:
                averaged.update_parameters(backbone)
            step += 1
            seen_this_run += len(ids)
            speed = seen_this_run / max(1e-9, time.perf_counter() - start)
            if step % cfg.log_every == 0 or step == 1:
                logs = world.mean(logs)
                entry = {"step": step, "elapsed_s": round(elapsed, 2), "lr": optimizer.param_groups[0]["lr"],
                         "images_per_s": round(speed, 1), "skipped_steps": skipped, "cpu_share": round(cpu.sample(), 3),
                         **{k: round(float(v.detach()), 5) for k, v in logs.items()}}
                if not warned_shared and time.perf_counter() - start > 60 and cpu.overall() < SHARED_BELOW:
                    warned_shared = True
                    log.warning("this run gets %.0f%% of the CPU time its %d threads could use: another process shares "
                                "the machine, so the --minutes budget buys about that share of the steps",
                                100 * cpu.overall(), cpu.threads)
                log_fh.write(json.dumps(entry) + "\n")
                log_fh.flush()
            eta = (budget_s - elapsed) if budget_s else (total_steps - step) * cfg.batch_size / max(speed, 1e-9)
            report(progress, min(step, total_steps or 10**12) if not budget_s else int(elapsed),
                   total_steps or int(budget_s), stage="train", unit="step" if total_steps else "s", loss=loss.item(),
                   img_s=round(speed), eta=f"{eta / 60:.1f}m",
                   **({"rank": round(figures["effective_rank"], 1)} if figures else {}),
                   **({"cpu": round(cpu.overall(), 2)} if warned_shared else {}))
            if time.perf_counter() - last_ckpt > cfg.checkpoint_minutes * 60:
                save_checkpoint(elapsed)
                last_ckpt = time.perf_counter()
        run_s = max(1e-9, time.perf_counter() - start)  # measured before the health check and checkpoint write
        logs = world.mean(logs)
        elapsed = elapsed_before + run_s
        if probe is not None:
            figures = check_health(elapsed, backbone if averaged is None else averaged.module)  # what is exported
    save_checkpoint(elapsed)
    if averaged is not None:
        backbone = averaged.module
    return TrainResult(backbone.eval(), step, step * cfg.batch_size, elapsed, seen_this_run / run_s,
                       {k: float(v.detach()) for k, v in logs.items()}, skipped, figures, round(cpu.overall(), 3),
                       world.size)
