"""Measurement primitives: clocks that wait for the device, time-boxed loops, percentiles, peak memory."""
from __future__ import annotations

import re
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_loop(step: Callable[[], None], seconds: float, device: torch.device, warmup: int = 1,
               min_iters: int = 3, max_iters: int = 10_000) -> np.ndarray:
    """Seconds per call of step(): `warmup` untimed calls, then calls until `seconds` pass (>= min_iters)."""
    for _ in range(warmup):
        step()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


def percentiles_ms(seconds: np.ndarray, qs=(50, 99)) -> list[float]:
    """Percentiles of per-call times, in milliseconds."""
    return [float(v) * 1e3 for v in np.percentile(seconds, qs)]


class PeakMemory:
    """Peak resident memory (and GPU memory) over a block.

    Linux: writing 5 to /proc/self/clear_refs resets the kernel's high-water mark (VmHWM), so each
    benchmark gets its own peak. Elsewhere the figure is the process peak so far (scope "process").
    """

    def __enter__(self) -> "PeakMemory":
        self.scope = "benchmark" if _reset_hwm() else "process"
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.rss_mb = self.gpu_mb = None
        return self

    def __exit__(self, *exc) -> bool:
        self.rss_mb = _hwm_mb()
        if torch.cuda.is_available():
            self.gpu_mb = torch.cuda.max_memory_allocated() / 2**20
        return False

    def to_dict(self) -> dict:
        out = {"peak_rss_mb": round(self.rss_mb, 1), "peak_rss_scope": self.scope}
        if self.gpu_mb is not None:
            out["peak_gpu_mb"] = round(self.gpu_mb, 1)
        return out


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _hwm_mb() -> float:
    try:
        match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if match:
            return int(match.group(1)) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
