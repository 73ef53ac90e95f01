"""Random draws for a batch, or for one process's rows of a larger batch.

In a DDP run each rank augments only its slice of the global batch. Inside `drawing_for(shard)` a
draw for the slice is made for the whole global batch, from the generator state all ranks share,
and the rank keeps its own rows: every image gets the crop, flip, colours (and pretext targets) one
process would have given it, and every rank's generator moves on exactly as one process's would.
Drawing a few numbers per image of the global batch costs microseconds. Outside it (the default)
each function is the plain torch call, so a single process draws what it always drew.

    with drawing_for(BatchShard(start=64, rows=64, total=128)):
        flip = rand(64, generator)        # numbers 64..127 of the 128 one process draws
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchShard:
    start: int  # this rank's first row in the global batch
    rows: int  # this rank's rows
    total: int  # rows of the global batch


_SHARD: contextvars.ContextVar[BatchShard | None] = contextvars.ContextVar("batch_shard", default=None)


@contextlib.contextmanager
def drawing_for(shard: BatchShard | None):
    """Draws in the block are this shard's rows of the global batch's draws (None: plain draws)."""
    token = _SHARD.set(shard)
    try:
        yield
    finally:
        _SHARD.reset(token)


def _global(shape, batch_dim: int) -> tuple[list[int], torch.Tensor | None]:
    """(shape of the global draw, rows of it that are this rank's), or (shape, None) outside a shard.

    A batch dimension of k * rows (a batch repeated k times, e.g. DINO's local crops) maps to k
    blocks of `total` rows, as the same call on the global batch would have it.
    """
    shape = [shape] if isinstance(shape, int) else list(shape)
    shard = _SHARD.get()
    if shard is None:
        return shape, None
    n = shape[batch_dim]
    if n % shard.rows:
        raise ValueError(f"a draw over {n} rows does not fit this process's {shard.rows} rows of the batch")
    blocks = n // shard.rows
    rows = (torch.arange(blocks)[:, None] * shard.total + shard.start + torch.arange(shard.rows)).flatten()
    shape[batch_dim] = blocks * shard.total
    return shape, rows


def rand(shape, generator: torch.Generator | None = None, device=None, batch_dim: int = 0) -> torch.Tensor:
    """torch.rand(shape) in [0, 1); dimension `batch_dim` indexes the batch."""
    full, rows = _global(shape, batch_dim)
    x = torch.rand(full, generator=generator, device=device)
    return x if rows is None else x.index_select(batch_dim, rows.to(x.device))


def randint(high: int, shape, generator: torch.Generator | None = None, device=None,
            batch_dim: int = 0) -> torch.Tensor:
    """torch.randint(0, high, shape); dimension `batch_dim` indexes the batch."""
    full, rows = _global(shape, batch_dim)
    x = torch.randint(0, high, full, generator=generator, device=device)
    return x if rows is None else x.index_select(batch_dim, rows.to(x.device))
