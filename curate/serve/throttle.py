"""Wrong credentials, slowed down: an exponential lockout per client, one log line per failure.

Pure bookkeeping with an injected clock, shared by the lookup service and the app's sign-in: after the
`free`-th wrong attempt from one client, that client waits `base` x 2^(extra failures) seconds (at most
`cap`) before its next attempt is even checked. A right answer clears its record. 30 guesses, which took
12 s through the app's form before (issue 30), now take hours.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


@dataclass
class Throttle:
    free: int = 3  # wrong attempts allowed without a wait (typos)
    base: float = 1.0  # seconds of the first wait
    cap: float = 900.0  # the longest wait
    max_clients: int = 10_000  # records kept; the oldest go first (a flood of addresses cannot fill memory)
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)  # client -> (count, locked until)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, client: str) -> float:
        """Seconds `client` must still wait before an attempt is checked (0: go ahead)."""
        with self._lock:
            count, until = self._failures.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, client: str, what: str = "credentials") -> float:
        """Record a wrong attempt; returns the wait it earned (logged with the client and the count)."""
        with self._lock:
            count = self._failures.pop(client, (0, 0.0))[0] + 1
            delay = 0.0 if count <= self.free else min(self.cap, self.base * 2 ** (count - self.free - 1))
            self._failures[client] = (count, self.clock() + delay)
            while len(self._failures) > self.max_clients:
                self._failures.pop(next(iter(self._failures)))
        log.warning("wrong %s from %s (%d in a row); next attempt checked in %.0f s", what, client, count, delay)
        return delay

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
