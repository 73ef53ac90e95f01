"""Which FAISS index for N vectors of dimension D within a memory budget (the choice autofaiss makes).

    Flat            exact; up to EXACT_MAX vectors (milliseconds per query there)
    IVF, Flat       vectors kept whole, searched in `nprobe` of `nlist` k-means partitions
    IVF_HNSW, Flat  the same with an HNSW graph over the partition centres, so that assigning
                    millions of vectors (and each query) to partitions is not a scan of all centres
    IVF, PQ         vectors compressed to m bytes (product quantisation) when whole vectors do not
                    fit the budget; a workspace search re-scores the candidates exactly from
                    embeddings.npy on disk (`RERANK`), so recall stays high. No OPQ rotation: with
                    re-scoring it adds little, and its training costs minutes per 50k vectors here

The budget bounds the index in memory (what a search process holds), not the embeddings file,
which is read from disk. How many partitions to search is tuned afterwards (curate.index.tune).
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

EXACT_MAX = 100_000  # up to here a flat index answers in milliseconds and is exact
HNSW_COARSE_FROM = 4096  # partitions from which the centres get an HNSW graph (a flat scan of them costs more)
MAX_LISTS = 8192  # k-means for more partitions costs tens of minutes on 2 cores, for little gain below 10^8
ID_BYTES = 8  # an IVF list stores an int64 id beside each code
PQ_BYTES = (512, 256, 128, 64, 32, 16, 8)  # bytes per compressed vector, largest (most accurate) first
DEFAULT_MEMORY = 4 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class IndexPlan:
    factory: str  # FAISS index_factory string
    kind: str  # flat | ivf | ivf_pq
    bytes: int  # estimated size in memory
    reason: str  # why this one, in words

    def to_dict(self) -> dict:
        return asdict(self)


def parse_memory(text: str | int) -> int:
    """'4G', '512M', '1.5G' or a byte count -> bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)I?B?\s*", str(text).upper())
    if not m:
        raise ValueError(f"memory must look like 4G, 512M or a number of bytes, not {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def ivf_lists(n: int) -> int:
    """Partitions for n vectors: a power of two near 2*sqrt(n) (~500 vectors per list at 1M), capped."""
    return int(min(MAX_LISTS, max(16, 2 ** round(math.log2(2 * math.sqrt(max(n, 1)))))))


def pq_bytes_for(d: int) -> list[int]:
    """Code sizes (bytes per vector) that split d dimensions evenly, at most one byte per dimension."""
    return [m for m in PQ_BYTES if m <= d and d % m == 0]


def plan_index(n: int, d: int, memory: int = DEFAULT_MEMORY) -> IndexPlan:
    """The most accurate index for n vectors of dimension d whose size fits `memory` bytes."""
    flat = n * (4 * d + ID_BYTES)
    if n <= EXACT_MAX and flat <= memory:
        return IndexPlan("IDMap2,Flat", "flat", flat, f"exact search: {n:,} vectors (up to {EXACT_MAX:,})")
    nlist = ivf_lists(n)
    coarse = f"IVF{nlist}_HNSW32" if nlist >= HNSW_COARSE_FROM else f"IVF{nlist}"
    centres = nlist * 4 * d * 2  # the centroids, and the HNSW graph's links roughly as much again
    if flat + centres <= memory:
        return IndexPlan(f"{coarse},Flat", "ivf", flat + centres,
                         f"{n:,} vectors fit whole in {_gib(memory)}: partitioned, uncompressed")
    for m in pq_bytes_for(d):
        size = n * (m + ID_BYTES) + centres
        if size <= memory:
            return IndexPlan(f"{coarse},PQ{m}", "ivf_pq", size,
                             f"{n:,} x {d}-d vectors need {_gib(flat)} whole, over {_gib(memory)}: "
                             f"compressed to {m} bytes each, re-scored exactly from embeddings.npy")
    smallest = n * (min(pq_bytes_for(d) or [d]) + ID_BYTES) + centres
    raise ValueError(f"{n:,} vectors need at least {_gib(smallest)} of index memory even compressed; "
                     f"raise --index-memory (now {_gib(memory)})")


def nlist_of(factory: str) -> int:
    """Partitions of an IVF factory string (0 when it has none)."""
    m = re.search(r"IVF(\d+)", factory)
    return int(m.group(1)) if m else 0


def _gib(b: int) -> str:
    return f"{b / (1 << 30):.2f} GiB" if b >= 1 << 30 else f"{b / (1 << 20):.0f} MiB"
