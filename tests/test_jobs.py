"""Background runs (curate.jobs): a real `curate` process, its progress file, its end state, cancel."""
from __future__ import annotations

import signal
import time

import pytest

from curate import jobs

pytestmark = pytest.mark.slow


def wait_for(ws, states, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        s = jobs.status(ws)
        if s["state"] in states:
            return s
        time.sleep(0.5)
    raise AssertionError(f"job still {jobs.status(ws)['state']} after {timeout}s: {jobs.status(ws)['log_tail']}")


def test_a_background_run_reports_progress_and_finishes(small_images, tmp_path):
    ws = tmp_path / "ws"
    assert jobs.status(ws) == {"state": "none"}
    jobs.start(ws, ["run", str(small_images), "-w", str(ws), "--epochs", "0.5", "--batch-size", "64"])
    with pytest.raises(RuntimeError, match="already going on"):
        jobs.start(ws, ["scan", str(small_images), "-w", str(ws)])
    seen = set()
    end = time.time() + 300
    while (s := jobs.status(ws))["state"] == "running" and time.time() < end:
        seen.add(s["progress"].get("info", {}).get("stage"))
        time.sleep(0.2)
    s = jobs.status(ws)
    assert s["state"] == "finished" and s["returncode"] == 0, s["log_tail"]
    assert (ws / "embeddings.npy").exists() and (ws / "index.faiss").exists()
    assert seen & {"scan", "decode", "embed"} or any(str(x).startswith("train") for x in seen), seen
    assert "done in" in s["log_tail"]


def test_a_failing_command_ends_failed_with_its_message(tmp_path):
    ws = tmp_path / "ws"
    jobs.start(ws, ["scan", str(tmp_path / "missing"), "-w", str(ws)])
    s = wait_for(ws, {"finished", "failed", "cancelled"}, timeout=120)
    assert s["state"] == "failed" and s["returncode"] == 2 and "image folder not found" in s["log_tail"]


def test_cancel_interrupts_a_training_run(small_images, tmp_path):
    ws = tmp_path / "ws"
    # Start it as `nohup curate app &` from a script would: the launcher ignores SIGINT and children inherit that.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        jobs.start(ws, ["train", str(small_images), "-w", str(ws), "--minutes", "5", "--batch-size", "32"])
    finally:
        signal.signal(signal.SIGINT, previous)
    end = time.time() + 180
    while not str(jobs.status(ws)["progress"].get("info", {}).get("stage", "")).startswith("train"):
        assert time.time() < end and jobs.status(ws)["state"] == "running", jobs.status(ws)["log_tail"]
        time.sleep(0.3)
    assert jobs.cancel(ws)
    s = wait_for(ws, {"finished", "failed", "cancelled"}, timeout=120)
    assert s["state"] == "cancelled" and s["returncode"] == 130
    assert not jobs.cancel(ws)


def test_a_reused_pid_does_not_look_like_a_running_job(tmp_path):
    """job.json names a pid that a later, unrelated process now has: the job ended, it is not running."""
    import subprocess
    import sys

    from curate import storage
    from curate.workspace import Workspace

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        ticks = jobs._start_ticks(other.pid)
        assert ticks is not None
        for recorded, state in ((ticks, "running"), (ticks - 1, "failed")):  # -1: a process that started earlier
            storage.write_json(Workspace(tmp_path).job_file,
                               {"pid": other.pid, "pid_start": recorded, "args": ["run"], "started": "", "started_s": 0})
            assert jobs.status(tmp_path)["state"] == state
    finally:
        other.kill()
        other.wait()
