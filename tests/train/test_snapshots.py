"""curate.train.snapshots: the encoder saved once at each snapshot minute, when that minute is passed."""
import torch

from curate.distributed import World
from curate.train.snapshots import Snapshots, snapshot_file


def test_each_snapshot_is_written_once_at_its_minute(tmp_path):
    model = torch.nn.Linear(3, 2)
    snapshots = Snapshots(tmp_path, [1.0, 0.5, 5.0], trained_s=0.0, batch_size=16, world=World())
    snapshots.save_due(model, step=1, elapsed_s=29.0)
    assert not (tmp_path / "snapshots").exists()  # no minute reached yet
    snapshots.save_due(model, step=2, elapsed_s=30.0)
    half = snapshot_file(tmp_path, 0.5)
    assert half == tmp_path / "snapshots" / "encoder-0.5min.pt"
    saved = torch.load(half, weights_only=True)
    assert {k: saved[k] for k in ("step", "elapsed_s", "images_seen")} == {"step": 2, "elapsed_s": 30.0,
                                                                         "images_seen": 32}
    assert all(torch.equal(saved["backbone"][k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        model.weight.add_(1.0)
    snapshots.save_due(model, step=3, elapsed_s=45.0)  # 0.5 min is done: not written again
    assert torch.load(half, weights_only=True)["step"] == 2
    snapshots.save_due(model, step=9, elapsed_s=61.0)
    assert torch.load(snapshot_file(tmp_path, 1.0), weights_only=True)["step"] == 9
    assert not snapshot_file(tmp_path, 5.0).exists() and snapshots.due == [5.0]


def test_a_resumed_run_skips_the_minutes_it_had_passed_and_other_ranks_write_nothing(tmp_path):
    resumed = Snapshots(tmp_path, [0.5, 1.0, 2.0], trained_s=60.0, batch_size=16, world=World())
    assert resumed.due == [2.0]
    other_rank = Snapshots(tmp_path, [0.5], trained_s=0.0, batch_size=16, world=World(rank=1, size=2))
    other_rank.save_due(torch.nn.Linear(3, 2), step=1, elapsed_s=31.0)
    assert other_rank.due == [] and not snapshot_file(tmp_path, 0.5).exists()  # passed on every rank, written by 0
