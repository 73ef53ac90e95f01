"""curate.train.step_log: a line at step 1 and every `every` steps, and a progress report with an ETA
after every step."""
import json

import pytest
import torch

from curate.distributed import World
from curate.train.budget import Budget, Clock
from curate.train.cpu_share import CpuShare
from curate.train.step_log import StepLog


def _logs(step: int) -> dict:
    return {"loss": torch.tensor(1.0 / step), "simclr/loss": torch.tensor(2.0 / step)}


def _run(tmp_path, budget: Budget, steps: int, every: int = 3, started_s_ago: float = 8.0):
    """`steps` steps of 8 images, `started_s_ago` seconds into the run (about 8 / started_s_ago images/s at step 1)."""
    reports = []
    clock = Clock()
    clock.start -= started_s_ago
    with StepLog(tmp_path / "train_log.jsonl", every, batch_size=8, world=World(), budget=budget, clock=clock,
                 cpu=CpuShare(1), progress=lambda done, total, info: reports.append((done, total, info))) as log:
        for step in range(1, steps + 1):
            returned = log.after_step(step, elapsed_s=0.5 * step, logs=_logs(step), lr=0.01, skipped=step // 4,
                                      health={"effective_rank": 7.26} if step > 2 else None)
            assert set(returned) == {"loss", "simclr/loss"}
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    return rows, reports, log


def test_a_line_at_step_one_and_every_n_steps(tmp_path):
    rows, _, log = _run(tmp_path, Budget(seconds=None, steps=10), steps=7)
    assert [r["step"] for r in rows] == [1, 3, 6]
    assert set(rows[1]) == {"step", "elapsed_s", "lr", "images_per_s", "skipped_steps", "cpu_share", "loss",
                            "simclr/loss"}
    assert rows[1]["elapsed_s"] == 1.5 and rows[1]["lr"] == 0.01 and rows[2]["skipped_steps"] == 1
    assert rows[1]["loss"] == pytest.approx(0.33333) and rows[1]["images_per_s"] > 0 and 0 <= rows[1]["cpu_share"] <= 1
    assert log.seen == 7 * 8 and rows[0]["images_per_s"] == pytest.approx(1.0, abs=0.1)  # 8 images in ~8 s
    rows, _, _ = _run(tmp_path, Budget(None, 10), steps=2)
    assert [r["step"] for r in rows] == [1, 3, 6, 1]  # appended to (start_logs trims or clears it), never truncated


def test_the_progress_report_counts_steps_of_an_epoch_budget_with_an_eta(tmp_path):
    _, reports, _ = _run(tmp_path, Budget(seconds=None, steps=10), steps=4)
    assert [(done, total) for done, total, _ in reports] == [(1, 10), (2, 10), (3, 10), (4, 10)]
    info = reports[-1][2]
    assert info["stage"] == "train" and info["unit"] == "step" and info["loss"] == pytest.approx(0.25)
    assert info["img_s"] == 4 and info["eta"] == "0.2m"  # 32 images in ~8 s; 6 steps of 8 images left: ~12 s
    assert "rank" not in reports[1][2] and reports[2][2]["rank"] == 7.3  # the last health figures, once there


def test_the_progress_report_counts_seconds_of_a_time_budget(tmp_path):
    _, reports, _ = _run(tmp_path, Budget(seconds=60.0, steps=None), steps=3)
    assert [(done, total, info["unit"]) for done, total, info in reports] == [(0, 60, "s"), (1, 60, "s"),
                                                                              (1, 60, "s")]
    assert reports[-1][2]["eta"] == f"{(60 - 1.5) / 60:.1f}m"  # the budget's rest
