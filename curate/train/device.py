"""Device and numeric precision: CUDA when present, bf16 where the hardware runs it natively."""
from __future__ import annotations

import contextlib
import os
from functools import partial
from pathlib import Path

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    return torch.device(name)


# oneDNN instruction-set caps (ONEDNN_MAX_CPU_ISA) that still include bf16 dot products
BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10_1_512", "ALL", "DEFAULT")


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 convolutions run ~2.5x faster than fp32 (measured, bench/). A oneDNN
    capped below bf16 (ONEDNN_MAX_CPU_ISA=AVX2, how an AVX2-only CPU is emulated here) runs it emulated."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if not cap.startswith(BF16_ISAS):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """'auto' -> 'bf16' where the device runs it natively, else 'fp32'."""
    if precision == "auto":
        use = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
        return "bf16" if use else "fp32"
    return precision


def autocast_factory(device: torch.device, precision: str = "auto"):
    """A zero-argument context-manager factory for the forward pass (no-op for fp32)."""
    precision = resolve_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext
    if precision != "bf16":
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    return partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)


def set_threads(n: int) -> None:
    """Use n CPU threads in torch, FAISS and numba (UMAP), and in subprocesses that read OMP_NUM_THREADS."""
    import sys

    import faiss

    if n < 1:
        raise ValueError(f"--threads must be at least 1, not {n}")
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "numba" in sys.modules:  # its pool size is fixed once loaded: changing the variable now breaks compiles
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    else:  # numba reads it when first imported (by UMAP, later)
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
