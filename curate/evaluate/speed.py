"""Embedding throughput (images/s), memory (RSS) and per-stage timings for the evaluation report.

Throughput is timed on the real embedding path (`embed_images`: uint8 cache rows -> normalised
float -> backbone -> L2-normalised vectors) after one untimed warm-up batch, because the first
call pays one-off costs (kernel selection, allocator growth) that a long embed run does not.
"""
from __future__ import annotations

import contextlib
import resource
import sys
import time

import numpy as np
import torch

from curate.embed.encoder import embed_images
from curate.progress import Progress, report


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (the high-water mark, never lower)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def current_rss_mb() -> float:
    """Resident set size now, in MiB (Linux /proc; elsewhere the peak, the closest figure available)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def embed_throughput(model: torch.nn.Module, images: np.ndarray, rows: np.ndarray, mean, std,
                     batch_size: int = 256, warmup: int = 16) -> tuple[np.ndarray, float]:
    """(vectors (len(rows), D) float32, images per second) for embedding images[rows] with `model`.

    The first `warmup` rows are embedded once untimed, then every row is embedded and timed.
    """
    rows = np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("no images to time")
    embed_images(model, images, rows[:warmup], mean, std, batch_size)
    start = time.perf_counter()
    vectors = embed_images(model, images, rows, mean, std, batch_size)
    if next(model.parameters()).is_cuda:
        torch.cuda.synchronize()
    return vectors, len(rows) / max(1e-9, time.perf_counter() - start)


class StageTimer:
    """Times each stage; names it in the progress callback unless its own code reports progress."""

    def __init__(self, progress: Progress | None):
        self.progress, self.seconds = progress, {}

    @contextlib.contextmanager
    def __call__(self, stage: str, reports_itself: bool = False):
        if not reports_itself:
            report(self.progress, 0, 1, stage=stage, unit="stage")
        start = time.perf_counter()
        yield
        self.seconds[stage] = round(time.perf_counter() - start, 2)
        if not reports_itself:
            report(self.progress, 1, 1, stage=stage, unit="stage")

    def renamed(self, stage: str) -> Progress | None:
        """The progress callback with every report relabelled `stage` (embed_images names its own)."""
        if self.progress is None:
            return None
        return lambda done, total, info: self.progress(done, total, {**info, "stage": stage})
