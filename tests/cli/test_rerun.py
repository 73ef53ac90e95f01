"""Reruns lose no work: an interrupted training resumes where it stopped (Ctrl-C / the app's Cancel
saves the step it was at), a finished one is not repeated, and images added later are embedded
with the encoder the workspace has."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from curate.cli import main
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
RECIPE = ["--epochs", "2", "--batch-size", "32"]


def run(capsys, *args) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_a_rerun_skips_finished_training_and_embeds_new_images(small_images, tmp_path, bundled_images, capsys):
    images = tmp_path / "images"
    shutil.copytree(small_images, images)
    ws = tmp_path / "ws"
    run(capsys, "run", str(images), "-w", str(ws), *RECIPE)
    encoder = (ws / "model" / "encoder.pt").read_bytes()

    extra = sorted((bundled_images / "cat").glob("*.jpg"))[-5:]  # five images the first run never saw
    for f in extra:
        shutil.copy2(f, images / "cat" / f"new_{f.name}")
    before = np.load(ws / "embeddings.npy")
    out = run(capsys, "run", str(images), "-w", str(ws), *RECIPE)
    assert "training skipped: the encoder was trained with this recipe" in out
    assert "embedded 5 images, 200 kept from the last embedding" in out  # only the new ones went through the encoder
    assert (ws / "model" / "encoder.pt").read_bytes() == encoder  # not trained again
    manifest = Workspace(ws).manifest()
    new_ids = manifest.loc[manifest["path"].str.startswith("cat/new_"), "id"].to_numpy()
    vectors = np.load(ws / "embeddings.npy")
    assert len(new_ids) == 5 and np.allclose(np.linalg.norm(vectors[new_ids], axis=1), 1, atol=1e-3)
    assert np.array_equal(vectors[:len(before)], before)  # the kept vectors are the stored ones

    out = run(capsys, "run", str(images), "-w", str(ws), *RECIPE, "--retrain")
    assert "training skipped" not in out and (ws / "model" / "encoder.pt").read_bytes() != encoder


@pytest.mark.slow
def test_an_interrupted_training_resumes_where_it_stopped(small_images, tmp_path, capsys):
    ws = tmp_path / "ws"
    slow = ["--epochs", "40", "--batch-size", "32"]  # ~226 steps (181 training images): interrupted in the middle
    # started with SIGINT ignored, as a shell starts `cmd &` (and an app started so starts its runs):
    # curate still stops on it
    proc = subprocess.Popen([sys.executable, "-m", "curate", "train", str(small_images), "-w", str(ws), *slow],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    log = ws / "model" / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
        time.sleep(0.2)  # past step 10: well inside training
    os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C and the app's Cancel send
    err = proc.communicate(timeout=60)[1]
    stopped = torch.load(ws / "model" / "checkpoint.pt", weights_only=True)["step"]
    assert proc.returncode == 130 and "interrupted" in err, err
    assert 10 <= stopped < 200 and not (ws / "model" / "encoder.pt").exists()

    out = run(capsys, "run", str(small_images), "-w", str(ws), *slow)
    assert "resuming training: a run of this recipe stopped after" in out and f"(step {stopped})" in out
    trained = json.loads((ws / "model" / "config.json").read_text())["trained"]
    total = int(40 * trained["train_images"] / 32)
    assert trained["steps"] == total  # the budget in steps, not that many more
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps[0] == 1 and steps[-1] == total // 10 * 10  # the log kept its first part and went on
