"""Atomic file writes: every artefact is written to a temp file in the same folder, then renamed.

A crash mid-write leaves the previous version (or nothing), never a half-written file. The temp
name carries the writer's pid, so `remove_stale_temps` can clear what a killed writer left
without touching a live writer's file. Append-only logs (JSON lines) are read line by line and a
line torn by a crash is skipped (`read_jsonl`), or cut off before a resumed run appends (`keep_jsonl`).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_UMASK_LOCK = threading.Lock()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it replaces `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes 0600; published files get the usual mode. Set after the body, which may
        # have replaced the temp file with a new one.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:  # make the bytes durable before the rename publishes them
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # the rename itself survives a power cut
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # a platform or file system without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_prefix(name: str) -> str:
    """A hidden temp-name prefix from `name` and the writer's pid, short enough that the temp name
    fits the 255-byte limit: `.NAME.PID.` (mkstemp adds random letters and `.tmp`)."""
    short = name.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    return f".{short}.{os.getpid()}."


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files under `folder` whose writer is no longer running (killed mid-write);
    returns them. A temp file of a live process (any pid that exists) is left alone."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        pid = _writer_pid(tmp.name)
        if pid is None or _pid_exists(pid):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _writer_pid(temp_name: str) -> int | None:
    parts = temp_name.split(".")  # "", NAME..., PID, RANDOM, "tmp"
    return int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSON-lines log; [] when absent. A line that does not parse (torn by a crash
    mid-append) is skipped, so one bad line never costs the rest of the log."""
    rows = []
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def keep_jsonl(path: str | os.PathLike, keep) -> None:
    """Rewrite a JSON-lines log atomically with only the rows `keep(row)` accepts, torn lines dropped:
    what a resumed run does before it appends, so the log has no torn line and no step twice."""
    if not Path(path).exists():
        return
    write_text(path, "".join(json.dumps(row) + "\n" for row in read_jsonl(path) if keep(row)))


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux).

    `os.umask` can only be read by setting it, and for that instant another thread creating a
    file would get mode 0666: the app and the thread pools here do create files concurrently.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # no /proc: serialise our own readers at least
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def write_parquet(path: str | os.PathLike, frame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
