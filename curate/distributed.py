"""The process group of a DDP training run, seen from one rank: who it is, and the few collectives
the trainer and the pretext tasks need (DESIGN.md §6).

Outside a process group (the default single-process run) every function here is the identity or a
no-op, so the code that calls them has one path:

    world = current()                       # World(rank=0, size=1) outside torchrun
    z = gather(z_local)                     # (size * B, D): every rank's rows in rank order; gradients flow back
    keys = gather(k_local, grad=False)      # the same, for tensors no loss differentiates (MoCo's keys)
    frac, stop = world.agree(frac, stop)    # rank 0's progress, and whether any rank was interrupted
    logs = world.mean(logs)                 # per-rank figures averaged over the ranks
    s = sum_over_ranks(x.sum(0))            # differentiable sum over the ranks (global BatchNorm statistics)

Why the gathered gradient is a sum: every rank computes the same loss on the gathered batch, so the
gradient of a rank's own rows is the sum of what every rank's loss sends back to them; DDP then
averages the parameter gradients over the ranks, which gives exactly the single-process gradient
of that loss (and of per-sample losses, which each rank takes over its own rows).
"""
from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # this rank's index on its machine (its GPU)
    local_size: int = 1  # ranks on this machine

    @property
    def main(self) -> bool:
        """Rank 0: the only one that writes logs, checkpoints and the exported encoder."""
        return self.rank == 0

    def rows(self, n: int) -> slice:
        """This rank's contiguous share of a global batch of n rows (n must divide evenly)."""
        if n % self.size:
            raise ValueError(f"a batch of {n} does not split over {self.size} processes: use a batch size divisible "
                             f"by {self.size}")
        per = n // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def agree(self, progress: float, stop: bool = False) -> tuple[float, bool]:
        """(rank 0's progress, whether any rank asks to stop), the same on every rank.

        The wall-clock budget and the learning rate follow rank 0's clock, so every rank takes the
        same number of steps with the same schedule; one all-reduce of two numbers per step.
        """
        if self.size == 1:
            return progress, stop
        t = torch.tensor([progress if self.main else 0.0, float(stop)], dtype=torch.float64)
        dist.all_reduce(t)  # a CPU tensor: gloo, also next to NCCL ("cpu:gloo,cuda:nccl")
        return float(t[0]), bool(t[1] > 0)

    def mean(self, logs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalar figures (detached) averaged over the ranks; the dict itself outside a process group."""
        if self.size == 1 or not logs:
            return logs
        values = torch.stack([v.detach().float().reshape(()) for v in logs.values()])
        dist.all_reduce(values)
        return dict(zip(logs, values / self.size))


def current() -> World:
    """The World of this process: rank and size of the initialised default group, else World()."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                 int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


class _Gather(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered rows and returns this rank's share.

    Written out rather than `torch.distributed.nn.functional.all_gather` (deprecated in torch 2.14,
    its successor private): an all_reduce in the backward works on every backend, gloo included.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)  # all_reduce works in place
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start:start + ctx.rows]


def gather(x: torch.Tensor, grad: bool = True) -> torch.Tensor:
    """(B, ...) on each rank -> (size * B, ...) on every rank, rank 0's rows first; x itself in one process.

    With grad=True the gradient flows back to every rank's own rows (see the module docstring);
    every rank must pass the same shape, and every rank must call it (it is a collective).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if grad and x.requires_grad:
        return _Gather.apply(x)
    with torch.no_grad():
        x = x.detach().contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts)


class _Sum(torch.autograd.Function):
    """all_reduce (sum) whose backward is the sum of every rank's gradient: each rank's output is the same sum."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of x over the ranks, differentiable (per-channel batch sums of a global BatchNorm);
    x itself in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _Sum.apply(x)


class InterruptFlag:
    """While active in a process group, SIGINT (Ctrl-C, the app's Cancel, torchrun's shutdown) sets
    `requested` instead of raising: a rank blocked in a collective cannot stop alone without its peers
    waiting for it forever, so the ranks agree on the stop at the next step (World.agree)."""

    def __init__(self, world: World):
        self.world, self.requested, self._previous = world, False, None

    def __enter__(self) -> "InterruptFlag":
        if self.world.size > 1:
            self._previous = signal.signal(signal.SIGINT, self._set)
        return self

    def _set(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> bool:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


@contextlib.contextmanager
def process_group(device_type: str):
    """Join the process group torchrun describes in the environment (gloo for CPU tensors, NCCL for CUDA ones)."""
    backend = "cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    try:
        yield current()
    finally:
        dist.destroy_process_group()
