"""One writer at a time, between real processes: a second trainer is refused and told who holds the
workspace, the lock dies with its holder (kill -9), and two taggers at once lose no tag."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.cli import main
from curate.data.tags import read_tags
from curate.locks import WorkspaceBusy, locked
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent


def hold_lock(folder: Path, name: str, seconds: float = 120) -> subprocess.Popen:
    """A separate process that takes the lock `name` in `folder`, says so, and sleeps holding it."""
    code = ("import sys, time\nfrom curate.locks import locked\n"
            f"with locked({str(folder)!r}, {name!r}):\n    print('held', flush=True)\n    time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_names_its_holder_and_dies_with_it(tmp_path):
    holder = hold_lock(tmp_path / "locks", "model")
    try:
        with pytest.raises(WorkspaceBusy, match=f"process {holder.pid}"):
            with locked(tmp_path / "locks", "model", wait=False, what="a training run"):
                pass
        with pytest.raises(WorkspaceBusy, match="Wait for it"):  # waiting gives up after its timeout
            with locked(tmp_path / "locks", "model", timeout=0.3):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: no cleanup code runs
        holder.wait()
    with locked(tmp_path / "locks", "model", wait=False):  # the kernel released it with the process
        assert json.loads((tmp_path / "locks" / "model.lock").read_text())["pid"] == os.getpid()
    assert (tmp_path / "locks" / "model.lock").read_text() == ""  # released: no holder named


def test_a_second_training_on_one_workspace_is_refused_with_a_reason(small_images, tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["scan", str(small_images), "-w", str(ws)]) == 0
    holder = hold_lock(Workspace(ws).locks_dir, "model")  # as a running `curate train` would
    try:
        code = main(["train", str(small_images), "-w", str(ws), "--epochs", "0.2", "--batch-size", "32"])
        err = capsys.readouterr().err
        assert code == 2 and "a training run already works on" in err and str(holder.pid) in err
        assert not (ws / "model" / "encoder.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", str(small_images), "-w", str(ws), "--epochs", "0.2", "--batch-size", "32"]) == 0


def scanned(images: Path, ws: Path, imports: str) -> str:
    """Scan `images` into `ws`; the start of a script for another process: `imports`, then `ws` opened."""
    assert main(["scan", str(images), "-w", str(ws)]) == 0
    return f"import sys\n{imports}\nfrom curate.workspace import Workspace\nws = Workspace({str(ws)!r})\n"


def test_two_taggers_at_once_lose_no_tag(small_images, tmp_path):
    ws = tmp_path / "ws"
    code = (scanned(small_images, ws, "from curate.data.tags import add_tag") +
            "for i in range(int(sys.argv[1]), int(sys.argv[1]) + 40):\n    add_tag(ws, [i], 'seen')\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start)], cwd=REPO) for start in (0, 100)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    tags = read_tags(Workspace(ws))
    assert sorted(tags["id"]) == list(range(40)) + list(range(100, 140))  # every read-modify-write kept


def test_two_processes_building_one_decode_cache_both_get_it(small_images, tmp_path):
    ws = tmp_path / "ws"
    code = (scanned(small_images, ws, "from curate.data.cache import image_cache") +
            "arr = image_cache(ws.root, ws.manifest(), 32, ws.cache_dir, chunk=16)\nprint(int(arr.sum()))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    sums = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and sums[0] == sums[1] and int(sums[0]) > 0
    assert not list((ws / "cache").glob("*.partial.*"))  # one finished cache, no half-built leftovers


def test_a_quality_check_waits_for_a_scan_rewriting_the_manifest(small_images, tmp_path):
    from curate.steps.quality import quality

    ws = tmp_path / "ws"
    assert main(["scan", str(small_images), "-w", str(ws)]) == 0
    holder = hold_lock(Workspace(ws).locks_dir, "manifest", seconds=1.5)  # as a scan in another process would
    started = time.monotonic()
    manifest = quality(Workspace(ws))
    assert time.monotonic() - started > 1.0  # it waited for the other writer instead of racing it
    assert holder.wait(timeout=10) == 0 and manifest["entropy"].notna().sum() == len(manifest)
