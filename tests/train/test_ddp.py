"""Training with torch DDP on real images: `curate train --nproc 2` (real torchrun, two CPU ranks, gloo)
against one process, resume, one writer, and the gathers whose gradients make a rank's step its share
of the single-process step."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torchvision
import yaml

from curate.cli import main
from curate.train.launch import cores

from tests.apptest_helpers import free_port

pytestmark = pytest.mark.skipif(cores() < 2, reason="two DDP ranks need two CPU cores")

# A small SimCLR recipe on 32 px images: fp32 (no bf16 rounding), a step logged each step, health probed.
RECIPE = {"tasks": [{"name": "simclr", "weight": 1.0, "params": {"temperature": 0.1, "projection_dim": 64,
                                                                   "hidden_dim": 128}}],
          "backbone": "resnet10", "optimizer": "adamw", "lr": 0.002, "batch_size": 32, "precision": "fp32",
          "health_minutes": 30, "log_every": 1}
EPOCHS = "1.1"  # 180 training images (200, 10% held out) in batches of 32: 6 steps


def _train(images, ws, preset, *extra) -> int:
    return main(["train", str(images), "-w", str(ws), "--preset", str(preset), "--epochs", EPOCHS, *extra])


def _losses(ws) -> dict[int, float]:
    lines = [json.loads(line) for line in (ws / "model" / "train_log.jsonl").read_text().splitlines()]
    return {e["step"]: e["loss"] for e in lines}


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("preset") / "tiny_simclr.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return path


@pytest.fixture(scope="module")
def runs(small_images, preset, tmp_path_factory):
    """The same recipe, seed and global batch trained by one process and by two DDP ranks."""
    root = tmp_path_factory.mktemp("ddp")
    assert _train(small_images, root / "single", preset) == 0
    assert _train(small_images, root / "ddp", preset, "--nproc", "2") == 0
    return root / "single", root / "ddp"


def test_two_ranks_follow_the_single_process_loss_curve(runs):
    single, ddp = (_losses(ws) for ws in runs)
    assert sorted(single) == sorted(ddp) == [1, 2, 3, 4, 5, 6]
    # Step 1 (same weights) is the same number: each rank's rows, their augmentations, the global
    # BatchNorm statistics and the global batch of negatives are exactly the single process's.
    assert ddp[1] == pytest.approx(single[1], abs=1e-4)
    # After it the curves part by float rounding only (a different summation order), which training
    # amplifies: measured at most 0.0012 over these 6 steps (0.015 by step 10; a single process with
    # 1 instead of 2 threads drifts as far). Local-only negatives or per-rank BatchNorm move step 1 by > 0.1.
    for step in range(2, 7):
        assert ddp[step] == pytest.approx(single[step], abs=0.01), step


def test_only_rank_zero_writes_and_the_encoder_loads_into_torchvision(runs):
    ws = runs[1] / "model"
    logs = sorted(p.name for p in runs[1].rglob("*.jsonl"))
    assert logs == ["health_log.jsonl", "train_log.jsonl"]
    steps = [json.loads(line)["step"] for line in (ws / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # one writer: no step twice
    assert len((ws / "health_log.jsonl").read_text().splitlines()) == 2  # at the start and the end
    config = json.loads((ws / "config.json").read_text())
    assert (config["trained"]["world_size"], config["trained"]["nproc"], config["trained"]["steps"]) == (2, 2, 6)
    assert config["trained"]["images_seen"] == 6 * 32  # global batches
    state = torch.load(ws / "encoder.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state)
    assert (config["architecture"], config["stem"]) == ("resnet10", "small_pool")
    model = torchvision.models.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # the small_pool stem keeps the max-pool
    model.fc = torch.nn.Identity()
    model.load_state_dict(state)  # strict
    assert torch.isfinite(model.eval()(torch.rand(2, 3, 32, 32))).all()


def test_resume_of_a_ddp_run_continues_from_its_checkpoint(runs, small_images, preset, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(runs[1], ws)
    assert torch.load(ws / "model" / "checkpoint.pt", weights_only=True)["step"] == 6
    assert main(["train", str(small_images), "-w", str(ws), "--preset", str(preset), "--epochs", "1.6",
                 "--nproc", "2", "--resume"]) == 0
    assert torch.load(ws / "model" / "checkpoint.pt", weights_only=True)["step"] == 9  # 3 more, not 9
    assert sorted(_losses(ws)) == list(range(1, 10))  # the log goes on where it stopped
    assert json.loads((ws / "model" / "config.json").read_text())["trained"]["steps"] == 9


def test_two_nodes_rendezvous_and_train_as_one_run(runs, small_images, preset, tmp_path):
    """`--nnodes 2`: the same command on two "nodes" (two launchers on this machine, one rank each, a c10d
    rendezvous on localhost, one shared workspace) trains as the single process does; no launcher wrote
    the workspace (both scanning it at once would race), rank 0 did."""
    ws, port = tmp_path / "ws", free_port()
    logs = [tmp_path / f"node{r}.log" for r in range(2)]
    nodes = []
    for rank, log in enumerate(logs):
        with open(log, "w") as out:
            nodes.append(subprocess.Popen(
                [sys.executable, "-m", "curate", "train", str(small_images), "-w", str(ws), "--preset", str(preset),
                 "--epochs", EPOCHS, "--threads", "1", "--nproc", "1", "--nnodes", "2", "--node-rank", str(rank),
                 "--rdzv-endpoint", f"127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT))
    try:
        for node, log in zip(nodes, logs):
            assert node.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:  # one node failing leaves the other waiting for its rendezvous
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait()
    single, two = _losses(runs[0]), _losses(ws)
    assert sorted(two) == [1, 2, 3, 4, 5, 6]  # one writer
    assert two[1] == pytest.approx(single[1], abs=1e-4)  # the global batch of the single process
    for step in range(2, 7):
        assert two[step] == pytest.approx(single[step], abs=0.01), step
    trained = json.loads((ws / "model" / "config.json").read_text())["trained"]
    assert (trained["world_size"], trained["nproc"]) == (2, 1)
    assert sum(log.read_text().count("scanned ") for log in logs) == 1  # rank 0's scan, on one node only


def test_too_many_processes_is_a_clear_error(small_images, preset, tmp_path, capsys):
    assert _train(small_images, tmp_path / "ws", preset, "--nproc", str(cores() + 1)) == 2
    assert f"--nproc {cores() + 1} is more processes than the {cores()} CPU cores" in capsys.readouterr().err


def test_a_failing_rank_surfaces_its_error(small_images, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"  # valid for the launcher, refused when a rank builds the task
    bad.write_text(yaml.safe_dump({**RECIPE, "tasks": [{"name": "simclr", "params": {"no_such_knob": 1}}]}))
    assert _train(small_images, tmp_path / "ws", bad, "--nproc", "2") == 2
    err = capsys.readouterr().err
    assert "error: training failed on rank" in err and "has no parameter(s) ['no_such_knob']" in err


# --- the gathers, in a real 2-process gloo group (spawned; torchrun is tested above) ------------------

B, D = 8, 16  # global batch and embedding size


def _embedding_problem():
    """A global batch of two views (2, B, 3) and a linear embedding (3, D), fixed by a seed."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, B, 3, generator=g), torch.randn(3, D, generator=g)


def _gather_rank(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from curate.distributed import gather
    from curate.losses import nt_xent

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    x, w = _embedding_problem()
    rows = slice(rank * B // world, (rank + 1) * B // world)
    x = x[:, rows].clone().requires_grad_()
    w.requires_grad_()
    z1, z2 = x[0] @ w, x[1] @ w
    loss = nt_xent(gather(z1), gather(z2), 0.5)
    loss.backward()
    dist.all_reduce(w.grad)
    w.grad /= world  # what DDP does with parameter gradients
    torch.save({"loss": loss.detach(), "w": w.grad, "x": x.grad}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _step_rank(rank: int, world: int, init: str, out: str, images: np.ndarray) -> None:
    import torch.distributed as dist

    from curate.distributed import current

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    grads, loss = _one_step(images, current())
    torch.save({"loss": loss, "grads": grads}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _one_step(images: np.ndarray, world):
    """The trainer's step on `images` (B, 32, 32, 3) uint8: (backbone gradients, loss) of this rank."""
    from curate.models import BackboneSpec, build_backbone
    from curate.pretext import MultiTask, TaskSpec
    from curate.train.ddp import batch_shard, step_function
    from curate.transforms import to_float

    torch.manual_seed(0)
    backbone = build_backbone(BackboneSpec("resnet10", "small_pool"))
    tasks = MultiTask([TaskSpec("simclr", 1.0, {"projection_dim": 32, "hidden_dim": 64})], backbone, 32)
    forward = step_function(backbone, tasks, world, torch.device("cpu"))
    rows = world.rows(len(images))
    with batch_shard(rows, len(images), world):
        logs = forward(to_float(torch.from_numpy(images[rows])), torch.Generator().manual_seed(3), None)
    logs["loss"].backward()
    return {k: p.grad.clone() for k, p in backbone.named_parameters()}, logs["loss"].detach()


def _spawn(fn, tmp_path, *args) -> list[dict]:
    mp.spawn(fn, args=(2, f"file://{tmp_path}/rendezvous", str(tmp_path), *args), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_gather_passes_the_single_process_gradient_back(tmp_path):
    from curate.distributed import gather
    from curate.losses import nt_xent

    x, w = _embedding_problem()
    x.requires_grad_(), w.requires_grad_()
    loss = nt_xent(gather(x[0] @ w), gather(x[1] @ w), 0.5)  # no process group here: gather is the identity
    loss.backward()
    ranks = _spawn(_gather_rank, tmp_path)
    for rank, got in enumerate(ranks):
        assert torch.allclose(got["loss"], loss.detach(), atol=1e-6)  # every rank: the global loss
        assert torch.allclose(got["w"], w.grad, rtol=1e-5, atol=1e-6)  # averaged as DDP does: the same gradient
        # a rank's own rows get the sum of both ranks' (equal) losses' gradients: 2x, halved again by DDP
        rows = slice(rank * B // 2, (rank + 1) * B // 2)
        assert torch.allclose(got["x"], 2 * x.grad[:, rows], rtol=1e-5, atol=1e-6)


def test_a_ddp_step_has_the_single_process_gradient(tmp_path, small_images):
    """Real SimCLR step on 8 real images: two ranks of 4 (global BatchNorm, gathered negatives, shared
    augmentation draws, DDP's averaging) give the backbone gradients of one process on all 8."""
    from curate.data.cache import image_cache
    from curate.data.scan import scan_folder
    from curate.distributed import World

    manifest, _ = scan_folder(small_images)
    images = np.ascontiguousarray(image_cache(small_images, manifest, 32, tmp_path / "cache")[::25][:8])
    expected, loss = _one_step(images, World())
    for got in _spawn(_step_rank, tmp_path, images):
        assert torch.allclose(got["loss"], loss, atol=1e-5)
        for name, grad in expected.items():
            assert torch.allclose(got["grads"][name], grad, rtol=1e-3, atol=1e-5), name
