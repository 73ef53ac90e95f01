"""One writer at a time: advisory locks between processes sharing a workspace.

A lock is `flock` on a small file (`<folder>/<name>.lock`), so the kernel releases it when its
holder exits or is killed: a crash never leaves a workspace locked. The holder writes who it is
(pid, command, since) into the file, so the one refused can say what holds it.

    with locked(ws.locks_dir, "model", wait=False, what="a training run"):
        ...  # train; a second trainer on this workspace gets WorkspaceBusy at once
    with locked(ws.locks_dir, "tags"):
        ...  # read-modify-write tags.parquet; a second tagger waits its turn
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

from curate.clock import now

WAIT_S = 600.0  # how long a waiting writer waits before it gives up
# How long even a writer that does not wait tries: a reader asking `busy` holds a lock for microseconds.
GRACE_S = 1.0


class WorkspaceBusy(RuntimeError):
    """Another process holds the lock this writer needs."""


@contextlib.contextmanager
def locked(folder: Path, name: str, wait: bool = True, timeout: float = WAIT_S, what: str = "another writer"):
    """Hold the lock `name` in `folder` for the block: wait for it (up to `timeout` s), or with
    wait=False fail within GRACE_S; either way WorkspaceBusy names the holder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}.lock"
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + (timeout if wait else GRACE_S)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(f"{what} already works on {folder.parent}: {holder(file)}. Wait for it to "
                                        "finish (or stop it), then run this again") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv), "since": now()}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(file: Path) -> str:
    """Who holds the lock in `file`, in words (as its holder wrote it)."""
    try:
        info = json.loads(Path(file).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "a process that is just starting or ending"
    return f"process {info.get('pid', '?')} (`{info.get('command', '?')}`, since {info.get('since', '?')})"


def busy(folder: Path) -> list[str]:
    """Who holds any lock in `folder` now, in words (empty when nobody writes); takes no lock itself."""
    held = []
    for file in sorted(Path(folder).glob("*.lock")):
        try:
            fd = os.open(file, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted at once unless a writer holds it
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            held.append(holder(file))
        finally:
            os.close(fd)
    return held
