"""Background runs: a `curate` command in its own process, whose progress lives in the workspace.

The app starts `curate run` this way, so the run goes on when the browser tab is closed or
reloaded, and any session can show its progress or cancel it:

    WS/job/job.json       the command, pid, start time
    WS/job/progress.json  the latest progress report (stage, done, total, live figures), ~1/s
    WS/job/status.json    written when the command ends: state (finished|failed|cancelled), exit code
    WS/job/log.txt        the command's output

`python -m curate.jobs WS -- ARGS...` is the wrapper that runs `curate ARGS...` and records its end.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from curate import storage
from curate.clock import now
from curate.progress import PROGRESS_ENV
from curate.workspace import Workspace


def start(ws_path: str | Path, args: list[str]) -> dict:
    """Start `curate ARGS` in the background for workspace `ws_path`; refuses while one is running."""
    ws = Workspace(ws_path)
    if status(ws_path).get("state") == "running":
        raise RuntimeError(f"a run is already going on in {ws_path}: wait for it or cancel it")
    ws.job_dir.mkdir(parents=True, exist_ok=True)
    for file in (ws.job_progress_file, ws.job_status_file):
        file.unlink(missing_ok=True)
    env = {**os.environ, PROGRESS_ENV: str(ws.job_progress_file)}
    with open(ws.job_log_file, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "curate.jobs", str(ws_path), "--", *args], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # its own process group: survives the app, cancellable
    job = {"pid": proc.pid, "pid_start": _start_ticks(proc.pid), "args": args, "started": now(),
           "started_s": time.time()}
    storage.write_json(ws.job_file, job)
    return job


def status(ws_path: str | Path) -> dict:
    """{"state": none|running|finished|failed|cancelled, "progress": {...}, "args", "log_tail", ...};
    a running job also says whether a cancel was asked for ("cancelling")."""
    ws = Workspace(ws_path)
    job = _read(ws.job_file)
    if not job:
        return {"state": "none"}
    out = {**job, "progress": _read(ws.job_progress_file) or {}}
    ended = _read(ws.job_status_file)
    if ended:
        out.update(ended)
    else:
        out["state"] = "running" if _alive(job["pid"], job.get("pid_start")) else "failed"
        out["cancelling"] = out["state"] == "running" and ws.job_cancel_file.exists()
    out["log_tail"] = _tail(ws.job_log_file)
    return out


def cancel(ws_path: str | Path) -> bool:
    """Interrupt a running job (SIGINT: the trainer keeps its last checkpoint); True if one was running."""
    job = status(ws_path)
    if job["state"] != "running":
        return False
    storage.write_json(Workspace(ws_path).job_cancel_file, {"requested": now()})
    os.killpg(job["pid"], signal.SIGINT)
    return True


def _run(ws_path: str, args: list[str]) -> int:
    from curate.cli import main

    # A shell without job control starts background programs with SIGINT ignored, and children inherit
    # that: restore Python's handler so `cancel` interrupts the run however the app was launched.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = main(args)
    ws = Workspace(ws_path)
    cancelled = ws.job_cancel_file.exists()
    state = "cancelled" if cancelled else "finished" if code == 0 else "failed"
    ws.job_cancel_file.unlink(missing_ok=True)
    storage.write_json(ws.job_status_file, {"state": state, "returncode": code, "ended": now()})
    return code


def _alive(pid: int, start_ticks: int | None = None) -> bool:
    """Is the job's process running? Not if it has ended (a zombie too), nor if its pid now belongs
    to a process started at another time (the pid was reused after the job died)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # no /proc: trust the pid
        return True
    return fields[0] != "Z" and (start_ticks is None or int(fields[19]) == start_ticks)


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot, /proc/PID/stat field 22); None without /proc."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "\n").splitlines()[-lines:])


if __name__ == "__main__":
    ws_arg, sep, *rest = sys.argv[1:]
    sys.exit(_run(ws_arg, rest))
