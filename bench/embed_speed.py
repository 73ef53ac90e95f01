"""Embed throughput: `curate.embed.embed_images` over the decoded cache against the pure forward-pass
limit of the same model; plus the scan and decoded-cache build rates of the same JPEGs.

The model is a randomly initialised backbone of the architecture `curate train` would export:
weights do not change the speed, and the benchmark then needs no trained checkpoint.
"""
from __future__ import annotations

import logging
import time

import torch

from bench.context import Context
from bench.measure import timed_loop
from bench.report import BenchResult
from curate.embed import embed_images
from curate.models import BackboneSpec, build_backbone
from curate.train.config import auto_stem
from curate.train.device import autocast_factory, resolve_precision
from curate.transforms import normalize
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD

TITLE = "embedding throughput (images/s) and decoded-cache build"
log = logging.getLogger(__name__)


def embed_rate(ctx: Context, model: torch.nn.Module, precision: str) -> tuple[float, float]:
    """(seconds, images/s) of embed_images over every cached row, after one untimed warm-up batch."""
    data, batch = ctx.decoded, ctx.cfg.embed_batch
    embed_images(model, data.images, data.rows[:batch], IMAGENET_MEAN, IMAGENET_STD, batch, precision)
    t0 = time.perf_counter()
    embed_images(model, data.images, data.rows, IMAGENET_MEAN, IMAGENET_STD, batch, precision)
    seconds = time.perf_counter() - t0  # embed_images copies every batch to host: already synchronised
    return seconds, len(data.rows) / seconds


@torch.no_grad()
def limit_rate(ctx: Context, model: torch.nn.Module, precision: str) -> float:
    """Images/s of model(x) alone on one normalised in-memory batch of the same shape and precision."""
    size, batch = ctx.decoded.image_size, ctx.cfg.embed_batch
    x = normalize(torch.rand(batch, 3, size, size, device=ctx.device))
    autocast = autocast_factory(ctx.device, precision)

    def step() -> None:
        with autocast():
            model(x)

    times = timed_loop(step, ctx.cfg.embed_limit_seconds, ctx.device)
    return batch * len(times) / float(times.sum())


def run(ctx: Context) -> BenchResult:
    data = ctx.decoded  # scanned and decoded now unless an earlier benchmark did (timings kept either way)
    n = len(data.rows)
    rows = [{"stage": "scan (manifest: read, sha1, verify)", "images": n, "seconds": data.scan_s,
             "img/s": n / data.scan_s},
            {"stage": f"decode cache (JPEG -> {data.image_size} px uint8)", "images": n, "seconds": data.decode_s,
             "img/s": n / data.decode_s}]
    precision = resolve_precision(ctx.device, ctx.cfg.embed_precision)
    torch.manual_seed(ctx.cfg.seed)
    model = build_backbone(BackboneSpec("resnet18", auto_stem(data.image_size))).to(ctx.device).eval()
    log.info("embed: %d images, %s", n, precision)
    seconds, rate = embed_rate(ctx, model, precision)
    limit = limit_rate(ctx, model, precision)
    rows.append({"stage": "embed_images", "images": n, "precision": precision, "batch": ctx.cfg.embed_batch,
                 "seconds": seconds, "img/s": rate, "limit img/s": limit, "embed/limit": rate / limit})
    notes = [f"{n:,} real JPEGs from {data.source}, resnet18 at {data.image_size} px, device {ctx.device}, "
             f"precision {ctx.cfg.embed_precision!r} -> {precision}",
             "scan and decode timed on a fresh scratch folder (the OS page cache may already hold the JPEGs)",
             "limit: model(x) on one in-memory batch, same batch size and precision"]
    return BenchResult(rows, notes)
