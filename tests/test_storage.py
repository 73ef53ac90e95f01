"""Atomic writes (curate.storage): all or nothing, no temp files left, the usual file modes."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate import storage


class Boom(Exception):
    pass


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def test_failure_inside_the_block_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "manifest.json"
    storage.write_json(target, {"version": 1})
    with pytest.raises(Boom):
        with storage.atomic_path(target) as tmp:
            tmp.write_text('{"version": 2, "half": ')  # half-written, then the writer dies
            raise Boom
    assert storage.read_json(target) == {"version": 1}
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_failure_with_no_previous_file_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        with storage.atomic_path(tmp_path / "sub" / "new.npy") as tmp:
            tmp.write_bytes(b"partial")
            raise Boom
    assert os.listdir(tmp_path / "sub") == []


def test_interrupt_inside_the_block_also_cleans_up(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with storage.atomic_path(target) as tmp:
            tmp.write_text("new")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_temp_file_is_hidden_and_beside_the_target_until_published(tmp_path):
    target = tmp_path / "data" / "x.txt"
    with storage.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".") and not target.exists()
        tmp.write_text("done")
    assert target.read_text() == "done" and os.listdir(target.parent) == ["x.txt"]


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, umask, mask, expected):
    umask(mask)
    storage.write_text(tmp_path / "t.txt", "x")
    storage.write_npy(tmp_path / "a.npy", np.zeros(3))
    assert mode(tmp_path / "t.txt") == expected and mode(tmp_path / "a.npy") == expected
    assert os.umask(mask) == mask, "reading the umask must leave it as it was"


def test_mode_holds_when_the_writer_replaces_the_temp_file(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "out.bin"
    with storage.atomic_path(target) as tmp:
        tmp.unlink()  # some libraries write a fresh file instead of reusing the one given
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"abc")
        os.close(fd)
    assert target.read_bytes() == b"abc" and mode(target) == 0o644


def test_round_trips_of_every_writer(tmp_path):
    storage.write_json(tmp_path / "a.json", {"b": [1, 2], "when": pd.Timestamp("2024-01-02")})
    assert storage.read_json(tmp_path / "a.json") == {"b": [1, 2], "when": "2024-01-02 00:00:00"}
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    storage.write_npy(tmp_path / "a.npy", arr)
    assert (np.load(tmp_path / "a.npy") == arr).all() and os.listdir(tmp_path).count("a.npy.npy") == 0
    frame = pd.DataFrame({"id": [0, 1], "path": ["x/é.jpg", "y.png"]})
    storage.write_parquet(tmp_path / "m.parquet", frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "m.parquet"), frame, check_dtype=False)
    storage.write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text() == "héllo"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_overwrite_replaces_whole_file(tmp_path):
    target = tmp_path / "x.json"
    storage.write_json(target, {"long": "x" * 1000})
    storage.write_json(target, {"s": 1})
    assert storage.read_json(target) == {"s": 1}


def test_long_file_names_still_fit_beside_their_temp_file(tmp_path):
    name = "é" * 120 + ".jpg"  # 244 bytes: a legal name, too long for a naive '.NAME.XXXX.tmp'
    storage.write_text(tmp_path / name, "ok")
    assert (tmp_path / name).read_text() == "ok"


def test_a_killed_writers_temp_file_is_removed_and_a_live_writers_is_kept(tmp_path):
    """A real writer killed with SIGKILL mid-write leaves its temp file; the next curate command on the
    workspace removes it, while the temp file of a writer still running stays."""
    import signal
    import subprocess
    import sys

    def writer(name: str) -> subprocess.Popen:
        code = ("import sys, time; from curate import storage\n"
                f"with storage.atomic_path({str(tmp_path / name)!r}) as tmp:\n"
                "    tmp.write_bytes(b'x' * 1000); print('writing', flush=True); time.sleep(600)\n")
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        return proc

    killed, alive = writer("embeddings.npy"), writer("index.faiss")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        temps = sorted(p.name for p in tmp_path.glob(".*.tmp"))
        assert [t.split(".")[:-2] for t in temps] == [["", "embeddings", "npy", str(killed.pid)],
                                                      ["", "index", "faiss", str(alive.pid)]]
        from curate.cli import main

        assert main(["search", "-w", str(tmp_path), "--id", "0"]) == 2  # not a workspace: fails, after the sweep
        assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == temps[1:]
        assert not (tmp_path / "embeddings.npy").exists() and not (tmp_path / "index.faiss").exists()
    finally:
        alive.kill()
        alive.wait()


def test_a_torn_log_line_is_skipped_on_read_and_cut_before_a_resumed_run_appends(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 2.0}\n{"step": 10, "loss": 1.5}\n{"step": 20, "loss": 1.2}\n{"step": 30, "lo')
    assert [r["step"] for r in storage.read_jsonl(log)] == [1, 10, 20]
    assert storage.read_jsonl(tmp_path / "absent.jsonl") == []
    storage.keep_jsonl(log, lambda row: row["step"] <= 10)  # the checkpoint was at step 10
    assert log.read_text() == '{"step": 1, "loss": 2.0}\n{"step": 10, "loss": 1.5}\n'
