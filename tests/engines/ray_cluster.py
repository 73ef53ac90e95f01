"""Real Ray clusters for the engine tests: `ray start --block` in its own session, ended exactly."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.apptest_helpers import free_port

RAY = Path(sys.executable).with_name("ray")


def ray_start(log: Path, *options: str) -> subprocess.Popen:
    """`ray start --block <options>` (a head, or a node joining one) in its own session, once Ray says it runs."""
    # No token authentication on either side: Ray >= 2.59 turns it on for `ray start` wherever ~/.ray/auth_token
    # exists, but not for a driver given an explicit address.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(RAY), "start", "--block", "--node-ip-address=127.0.0.1", "--num-gpus=0", "--disable-usage-stats",
             f"--dashboard-agent-listen-port={free_port()}", *options],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            end_session(proc)
            raise AssertionError(f"ray start failed:\n{log.read_text()}")
        time.sleep(0.2)
    return proc


def end_session(proc: subprocess.Popen) -> None:
    """End every process of `proc`'s session (the cluster it started): SIGTERM, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):  # Ray drains for up to 30 s: no need here
        proc.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
