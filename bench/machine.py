"""Facts about the machine and software a result was measured on (saved with every result)."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import faiss
import numpy as np
import torch

import curate
from curate.train.device import cpu_has_bf16, pick_device


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo: Path) -> str | None:
    """HEAD of the checkout (read-only git call); None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_facts(device_name: str, repo: Path) -> dict:
    """CPU, cores, threads, accelerator and library versions, plus the load average at the start
    (the benchmark is only as quiet as the machine)."""
    device = pick_device(device_name)
    facts = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "faiss_threads": faiss.omp_get_max_threads(), "cpu_bf16": cpu_has_bf16(),
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(), "torch": torch.__version__, "faiss": faiss.__version__,
        "numpy": np.__version__, "curate": curate.__version__, "commit": git_commit(repo),
        "os": platform.platform(),
    }
    facts["load_avg_start"] = load_average()
    return facts


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def summary_line(facts: dict) -> str:
    """One markdown line to print above the tables."""
    accel = facts["gpu"] or f"CPU only (bf16 {'native' if facts['cpu_bf16'] else 'emulated'})"
    return (f"{facts['cpu']}, {facts['cores']} cores ({facts['torch_threads']} torch threads), {accel}; "
            f"torch {facts['torch']}, faiss {facts['faiss']}, numpy {facts['numpy']}, curate {facts['curate']}"
            f"{' @ ' + facts['commit'] if facts['commit'] else ''}; load average {facts['load_avg_start']} "
            f"at start, {facts.get('load_avg_end')} at end")
