from pathlib import Path

import torch

from curate.train.device import cpu_has_bf16, resolve_precision


def test_bf16_follows_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text()
    assert cpu_has_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_a_onednn_capped_below_bf16_trains_in_fp32(monkeypatch):
    # ONEDNN_MAX_CPU_ISA=AVX2 is how an AVX2-only CPU is emulated: bf16 would run emulated, slower than fp32
    for cap in ("AVX2", "avx512_core", "AVX512_CORE_VNNI", "SSE41"):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert not cpu_has_bf16()
        assert resolve_precision(torch.device("cpu")) == "fp32"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    native = cpu_has_bf16()
    for cap in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert cpu_has_bf16() == native
