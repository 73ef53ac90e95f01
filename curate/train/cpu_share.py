"""How much of the CPU a training run actually gets: a shared machine made visible.

`--minutes` is a wall-clock budget, so a second busy process on the same cores silently halves
the images the budget buys. The share is the process's CPU time over what its threads could have
used in the same wall time: ~1 on a quiet machine, ~0.5 when another job takes half the cores.

    share = CpuShare(threads)
    ...
    recent = share.sample()  # share since the last sample (None the first time)
    share.overall()          # share since the start

    notice = SharedCpuNotice(share)
    notice.check(run_s)      # warns once when the run gets under SHARED_BELOW of its threads' time
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# Below this share a run is reported as sharing the machine: under 70% of its threads' time means
# another process (or the app's own server) took a good part of the cores.
SHARED_BELOW = 0.7


def share_of(cpu_seconds: float, wall_seconds: float, threads: int) -> float:
    """CPU seconds used over the most `threads` threads could have used in `wall_seconds`, capped at 1."""
    if wall_seconds <= 0 or threads <= 0:
        return 1.0
    return min(1.0, cpu_seconds / (wall_seconds * threads))


class CpuShare:
    def __init__(self, threads: int):
        self.threads = max(1, threads)
        self.start = self.last = (time.perf_counter(), time.process_time())

    def sample(self) -> float:
        """The share since the previous call (or since the start)."""
        now = (time.perf_counter(), time.process_time())
        share = share_of(now[1] - self.last[1], now[0] - self.last[0], self.threads)
        self.last = now
        return share

    def overall(self) -> float:
        return share_of(time.process_time() - self.start[1], time.perf_counter() - self.start[0], self.threads)


class SharedCpuNotice:
    """The warning that a run gets under SHARED_BELOW of its threads' CPU time, given once, and not
    before `after_s` seconds of running (the first seconds' share says little)."""

    def __init__(self, share: CpuShare, after_s: float = 60.0):
        self.share, self.after_s, self.warned = share, after_s, False

    def check(self, run_s: float) -> bool:
        """Warn if due after `run_s` seconds of running; True once the warning has been given."""
        if not self.warned and run_s > self.after_s and self.share.overall() < SHARED_BELOW:
            self.warned = True
            log.warning("this run gets %.0f%% of the CPU time its %d threads could use: another process shares "
                        "the machine, so the --minutes budget buys about that share of the steps",
                        100 * self.share.overall(), self.share.threads)
        return self.warned
