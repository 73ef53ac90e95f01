"""Embedding health: the four label-free figures, logged while training, collapse caught, and the
label-free `curate eval` report on a folder without class sub-folders."""
import contextlib
import os
import io
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from curate.data.cache import image_cache
from curate.data.scan import scan_folder
from curate.evaluate.health import alignment, effective_rank, health, is_collapsed, nn_similarity, uniformity
from curate.train import TrainConfig, train
from curate.train.trainer import RepresentationCollapsed


def test_figures_separate_spread_from_collapsed_embeddings():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(400, 64, generator=g)
    collapsed = torch.ones(400, 64) + 1e-4 * torch.randn(400, 64, generator=g)
    assert effective_rank(spread) > 40 and effective_rank(collapsed) < 1.1
    assert uniformity(spread) < -3.5 and uniformity(collapsed) > -1e-4  # in [-4, 0] for t = 2
    assert nn_similarity(collapsed) > 0.999 and nn_similarity(spread) < 0.6
    assert alignment(spread, spread) == pytest.approx(0.0, abs=1e-6)
    assert alignment(spread, -spread) == pytest.approx(4.0, abs=1e-4)  # opposite unit vectors: |2|^2
    assert not is_collapsed(health(spread)) and is_collapsed(health(collapsed))
    assert is_collapsed(health(torch.zeros(10, 8)))  # an encoder that outputs nothing at all
    # scale does not matter: the figures are of the directions
    assert effective_rank(5 * spread) == pytest.approx(effective_rank(spread), rel=1e-6)


def test_effective_rank_counts_the_directions_used():
    g = torch.Generator().manual_seed(1)
    three = torch.randn(300, 3, generator=g) @ torch.linalg.qr(torch.randn(64, 64, generator=g))[0][:3]
    assert 2.0 < effective_rank(three) <= 3.0 + 1e-6
    with pytest.raises(ValueError, match="at least 2"):
        health(torch.ones(1, 4))


@pytest.fixture(scope="module")
def cache(small_images, tmp_path_factory):
    manifest, _ = scan_folder(small_images)
    return image_cache(small_images, manifest, 32, tmp_path_factory.mktemp("cache"))


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_training_logs_health_from_start_to_end(cache, tmp_path):
    cfg = TrainConfig(epochs=1.0, batch_size=32, stem="small", health_minutes=1e-6, health_images=64)
    result = train(cache, np.arange(len(cache)), cfg, tmp_path)
    rows = _log(tmp_path / "health_log.jsonl")
    assert rows[0]["step"] == 0 and rows[-1]["step"] == result.steps == 6
    assert len(rows) == result.steps + 1  # before every step, and once more after the last
    for row in rows:
        assert {"effective_rank", "alignment", "uniformity", "nn_similarity", "elapsed_s"} <= set(row)
        assert 1 <= row["effective_rank"] <= 64 and -4 <= row["uniformity"] <= 0
    assert result.health == {k: rows[-1][k] for k in result.health}
    assert not is_collapsed(result.health)
    assert "effective_rank" not in _log(tmp_path / "train_log.jsonl")[0]  # the loss log keeps its rows


def _collapse_checkpoint(model_dir) -> None:
    """Zero every weight of the checkpoint's backbone: the degenerate fixed point where the encoder maps
    every image to the same (zero) vector, which is where a collapsing run ends up."""
    file = model_dir / "checkpoint.pt"
    state = torch.load(file, weights_only=True)
    state["backbone"] = {k: torch.zeros_like(v) if v.is_floating_point() else v for k, v in state["backbone"].items()}
    torch.save(state, file)


def test_a_collapse_is_warned_about_and_stops_only_when_asked(cache, tmp_path, caplog):
    ids = np.arange(len(cache))
    for name in ("warn", "stop"):
        train(cache, ids, TrainConfig(epochs=0.2, batch_size=32, stem="small", health_minutes=0), tmp_path / name)
        _collapse_checkpoint(tmp_path / name)
    cfg = dict(epochs=1.0, batch_size=32, stem="small", health_minutes=1e-6, health_images=64)
    with caplog.at_level(logging.WARNING, logger="curate.train.trainer"):
        result = train(cache, ids, TrainConfig(**cfg), tmp_path / "warn", resume=True)
    assert result.steps == 6 and "representation has collapsed" in caplog.text  # warned, and trained on
    with pytest.raises(RepresentationCollapsed, match="collapsed at step 1"):
        train(cache, ids, TrainConfig(**cfg, stop_on_collapse=True), tmp_path / "stop", resume=True)
    assert is_collapsed(_log(tmp_path / "stop" / "health_log.jsonl")[-1])
    assert torch.load(tmp_path / "stop" / "checkpoint.pt", weights_only=True)["step"] == 1  # stopped with a checkpoint


def test_cli_stop_on_collapse_says_why(small_images, tmp_path, capsys):
    from curate.cli import main

    ws = tmp_path / "ws"
    assert main(["train", str(small_images), "-w", str(ws), "--epochs", "0.2", "--batch-size", "32"]) == 0
    _collapse_checkpoint(ws / "model")
    code = main(["train", str(small_images), "-w", str(ws), "--resume", "--epochs", "1", "--health-minutes",
                 "0.000001", "--stop-on-collapse"])
    assert code != 0
    assert "representation collapsed" in capsys.readouterr().err
    assert (ws / "model" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_label_free_eval_on_a_folder_without_classes(bundled_images, tmp_path):
    from curate.cli import main

    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted(bundled_images.rglob("*.jpg"))[::5]:  # 400 images, no class folders
        shutil.copy2(f, flat / f"{f.parent.name}_{f.name}")
    ws = tmp_path / "ws"
    assert main(["train", str(flat), "-w", str(ws), "--epochs", "1", "--batch-size", "64"]) == 0
    assert main(["embed", str(flat), "-w", str(ws)]) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", "-w", str(ws)]) == 0
    report = json.loads((ws / "reports" / "eval.json").read_text())
    assert report["label_free"] and "knn_top1" not in report and "labels" in report["skipped"]
    trained, random_init = report["health"], report["health_random_init"]
    assert report["health_images"] == 400 and 1 < trained["effective_rank"] <= 512
    assert trained["uniformity"] < random_init["uniformity"]  # training spreads the embeddings out
    assert "effective rank" in out.getvalue() and "400 images, no labels" in out.getvalue()
    assert "training_health" in report["plots"] and (ws / "reports" / "training_health.png").exists()


def test_cpu_share_tells_a_busy_process_from_a_waiting_one():
    import time

    from curate.train.cpu_share import CpuShare, share_of

    assert share_of(1.0, 1.0, 2) == 0.5 and share_of(3.0, 1.0, 2) == 1.0 and share_of(1.0, 0.0, 2) == 1.0
    share = CpuShare(threads=1)
    time.sleep(0.3)  # waiting: no CPU time, as when another process holds the core
    assert share.sample() < 0.3
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # busy on one thread
        pass
    assert share.sample() > 0.4 and 0 < share.overall() < 1  # (a loaded CI machine gives it less than all)


def test_threads_flag_and_cpu_share_land_in_the_model_config(small_images, tmp_path, monkeypatch):
    import os

    import torch

    from curate.cli import main

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):  # --threads sets them: restored after the test
        original = os.environ.get(var)
        monkeypatch.setenv(var, "1")  # records the original value, or its absence, for teardown
        if original is not None:
            monkeypatch.setenv(var, original)
    try:
        ws = tmp_path / "ws"
        assert main(["train", str(small_images), "-w", str(ws), "--epochs", "0.2", "--batch-size", "32",
                     "--threads", "1"]) == 0
        trained = json.loads((ws / "model" / "config.json").read_text())["trained"]
        assert trained["threads"] == 1 and 0 < trained["cpu_share"] <= 1
        assert "cpu_share" in _log(ws / "model" / "train_log.jsonl")[0]
        assert main(["train", str(small_images), "-w", str(ws), "--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)


def test_threads_can_change_after_numba_has_started_its_pool():
    """--threads in a process that already made a UMAP map (the app, a test run): numba's pool is fixed
    once started, so the setting must not break its next compile (it raised RuntimeError)."""
    script = ("import numba, numpy as np\n"
              "from numba import prange\n"
              "@numba.njit(parallel=True)\n"
              "def total(x):\n"
              "    s = 0.0\n"
              "    for i in prange(len(x)):\n"
              "        s += x[i]\n"
              "    return s\n"
              "total(np.ones(10))\n"  # starts the pool
              "from curate.train.device import set_threads\n"
              "set_threads(1)\n"
              "print(numba.njit(lambda v: v + 1)(41), numba.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["42", "1"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_a_shared_cpu_is_noticed_and_a_step_budget_offered(small_images, tmp_path):
    """A real busy process on the trainer's only core: the run says it got about half the CPU, writes
    the share into model/config.json, and offers --epochs as the budget sharing cannot shrink."""
    core = sorted(os.sched_getaffinity(0))[0]
    hog = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    try:
        out = subprocess.run([sys.executable, "-m", "curate", "train", str(small_images), "-w", str(tmp_path / "ws"),
                              "--minutes", "0.3", "--batch-size", "32", "--threads", "1"], capture_output=True,
                             text=True, timeout=600, preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    finally:
        hog.kill()
        hog.wait()
    assert out.returncode == 0, out.stderr[-2000:]
    share = json.loads((tmp_path / "ws" / "model" / "config.json").read_text())["trained"]["cpu_share"]
    assert share < 0.7 and "another process shared the machine" in out.stdout and "--epochs N" in out.stdout
