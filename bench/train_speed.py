"""Train throughput: curate's real training loop against the pure forward+backward limit of the same model.

Loop: `curate.train.train` on the decoded cache, TrainConfig defaults except the wall-clock budget
(and precision). Its steady-state rate comes from timestamping every step through the trainer's
own progress callback, skipping the first ~20% of steps (allocator, oneDNN/cuDNN kernel choice).
Limit: the same backbone, task heads, loss, backward and optimiser step on views precomputed once
in memory, so loop/limit is the share of time spent on actual learning rather than on reading
the cache, building augmented views and bookkeeping.
"""
from __future__ import annotations

import gc
import logging
import shutil
import time

import torch

from bench.context import Context
from bench.measure import timed_loop
from bench.report import BenchResult
from curate.models import BackboneSpec, build_backbone
from curate.pretext import MultiTask, parse_task
from curate.train.config import auto_stem
from curate.train import TrainConfig, train
from curate.train.device import autocast_factory
from curate.train.trainer import make_optimizer

TITLE = "training throughput (images/s; SimCLR sees 2 views per image)"
WARMUP_FRACTION = 0.2
log = logging.getLogger(__name__)


class StepClock:
    """A curate Progress callback that records when each training step finished."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, done, total, info) -> None:
        if info.get("stage") == "train":
            self.times.append(time.perf_counter())

    def steady_rate(self, batch: int) -> tuple[float, int]:
        """(images/s over the steps after warm-up, steps measured); NaN with fewer than 2 steps."""
        skip = max(1, round(WARMUP_FRACTION * len(self.times)))
        measured = len(self.times) - skip
        if measured < 1:
            return float("nan"), 0
        return batch * measured / (self.times[-1] - self.times[skip - 1]), measured


def train_config(ctx: Context, precision: str) -> TrainConfig:
    """TrainConfig defaults, with the benchmark's budget, batch size and precision."""
    size = ctx.decoded.image_size
    return TrainConfig(tasks=[parse_task(ctx.cfg.task)], minutes=ctx.cfg.train_seconds / 60,
                       batch_size=ctx.cfg.train_batch, precision=precision, image_size=size,
                       stem=auto_stem(size), device=ctx.cfg.device)


def loop_speed(ctx: Context, precision: str) -> dict:
    """Run the real trainer for the budget; its steady-state and overall images/s."""
    data, cfg = ctx.decoded, train_config(ctx, precision)
    out_dir = ctx.scratch / f"train-{precision}"
    clock = StepClock()
    result = train(data.images, data.rows, cfg, out_dir, progress=clock)
    shutil.rmtree(out_dir, ignore_errors=True)
    steady, measured = clock.steady_rate(result.batch_size)
    return {"steps": result.steps, "measured_steps": measured, "loop": steady, "trainer": result.images_per_s,
            "loss": result.last_losses.get("loss")}


def limit_speed(ctx: Context, precision: str) -> float:
    """Images/s of forward + loss + backward + optimiser step on in-memory views of random pixels."""
    cfg, device = train_config(ctx, precision), ctx.device
    torch.manual_seed(cfg.seed)
    backbone = build_backbone(BackboneSpec(cfg.backbone, cfg.stem)).to(device).train()
    tasks = MultiTask(cfg.tasks, backbone, cfg.image_size).to(device).train()
    optimizer = make_optimizer(list(backbone.parameters()) + list(tasks.parameters()), cfg)
    autocast = autocast_factory(device, precision)
    pixels = torch.rand(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device)
    # views built once: the limit keeps only what no data pipeline can remove
    prepared = [(name, task, *task.build_views(pixels)) for name, task in tasks.tasks.items()]

    def step() -> None:
        total = 0.0
        for name, task, views, targets in prepared:
            with autocast():
                out = task(backbone, views)
            total = total + tasks.weights[name] * task.loss(out, targets)["loss"]
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        tasks.on_step_end(backbone, 0.5)

    times = timed_loop(step, ctx.cfg.limit_seconds, device)
    return cfg.batch_size * len(times) / float(times.sum())


def run(ctx: Context) -> BenchResult:
    rows = []
    for precision in ctx.cfg.precisions:
        log.info("train %s: real loop for %.0f s", precision, ctx.cfg.train_seconds)
        loop = loop_speed(ctx, precision)
        gc.collect()
        log.info("train %s: in-memory limit for %.0f s", precision, ctx.cfg.limit_seconds)
        limit = limit_speed(ctx, precision)
        gc.collect()
        rows.append({"task": ctx.cfg.task, "precision": precision, "batch": ctx.cfg.train_batch,
                     "steps": loop["steps"], "timed steps": loop["measured_steps"],
                     "loop img/s": loop["loop"], "trainer img/s (incl. warm-up)": loop["trainer"],
                     "limit img/s": limit, "loop/limit": loop["loop"] / limit})
    base = next((r["loop img/s"] for r in rows if r["precision"] == "fp32"), None)
    for row in rows:
        row["loop vs fp32"] = row["loop img/s"] / base if base else None
    data = ctx.decoded
    notes = [f"{len(data.rows):,} images of {data.source} at {data.image_size} px, resnet18 "
             f"{auto_stem(data.image_size)} stem, device {ctx.device}, "
             f"budget {ctx.cfg.train_seconds:.0f} s per precision",
             f"loop img/s: steps after the first {WARMUP_FRACTION:.0%} (at least 1), timed by the trainer's progress "
             f"callback; trainer img/s: TrainResult.images_per_s (whole run, incl. warm-up)",
             "limit: same backbone, heads, loss, backward and SGD step on views built once in memory"]
    return BenchResult(rows, notes)
