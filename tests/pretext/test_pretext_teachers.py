"""MoCo, BYOL, SimSiam and DINO: EMA teachers, MoCo's queue, DINO's center and schedule, checkpoints, CLI runs."""
import pytest
import torch
import torch.nn as nn

from curate.losses import dino_loss, infonce, teacher_temperature
from curate.models.ema import cosine_momentum, ema_update, frozen_copy
from curate.pretext import MultiTask, TaskSpec
from curate.pretext.base import build_task
from curate.pretext.moco import enqueue
from curate.train.config import TrainConfig
from curate.train.trainer import make_optimizer

SMALL = {  # narrow heads keep these tests fast; the behaviour under test does not depend on width
    "moco": {"queue_size": 10, "hidden_dim": 16, "projection_dim": 8},
    "byol": {"hidden_dim": 16, "projection_dim": 8},
    "simsiam": {"projection_dim": 16, "predictor_dim": 4},
    "dino": {"hidden_dim": 16, "bottleneck_dim": 8, "out_dim": 32},
}


def _backbone():
    torch.manual_seed(0)  # a tiny CNN that, like the ResNets, pools any input size to (B, 8)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _task(name, backbone, **params):
    task = build_task(TaskSpec(name, params={**SMALL[name], **params}), 8, 16)
    task.setup(backbone)
    return task


def _images(b=4):
    return torch.rand(b, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _step(task, backbone, progress=0.5, seed=1):
    views, targets = task.build_views(_images(), torch.Generator().manual_seed(seed))
    out = task(backbone, views)
    losses = task.loss(out, targets)
    task.on_step_end(backbone, progress)
    return out, targets, losses


TEACHERS = {  # task -> (teacher attribute, the online attribute it follows; None: the shared backbone)
    "moco": [("key_backbone", None), ("key_projector", "projector")],
    "byol": [("target_backbone", None), ("target_projector", "projector")],
    "dino": [("teacher_backbone", None), ("teacher_head", "head")],
}


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_teachers_follow_the_momentum_rule_and_are_not_optimised(name):
    backbone = _backbone()
    task = _task(name, backbone)
    pairs = [(getattr(task, t), getattr(task, o) if o else backbone) for t, o in TEACHERS[name]]
    before = [{k: v.clone() for k, v in teacher.state_dict().items()} for teacher, _ in pairs]
    with torch.no_grad():  # the online networks move, as an optimiser step would move them
        for _, net in pairs:
            for p in net.parameters():
                p.add_(torch.randn_like(p))
    task.on_step_end(backbone, 0.3)
    m = cosine_momentum(0.99, 0.3)
    for (teacher, net), old in zip(pairs, before):
        assert not list(teacher.parameters()), "teacher weights are buffers: no optimiser or autograd sees them"
        for key, p in net.named_parameters():
            assert torch.allclose(teacher.get_buffer(key), m * old[key] + (1 - m) * p.detach(), atol=1e-6), key
        for key, _ in net.named_buffers():  # BatchNorm statistics are the teacher's own
            assert torch.equal(teacher.get_buffer(key), old[key])
    optimiser = make_optimizer(list(backbone.parameters()) + list(task.parameters()), TrainConfig())
    optimised = {id(p) for group in optimiser.param_groups for p in group["params"]}
    frozen = {id(t) for teacher, _ in pairs for t in teacher.state_dict(keep_vars=True).values()}
    assert not optimised & frozen
    assert {id(p) for p in task.parameters()} <= optimised


def test_ema_update_on_plain_frozen_parameters():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2).requires_grad_(False)
    old = target.weight.clone()
    ema_update(target, online, 0.9)
    assert torch.allclose(target.weight, 0.9 * old + 0.1 * online.weight.detach())
    copy = frozen_copy(online)
    assert not list(copy.parameters()) and torch.equal(copy.weight, online.weight)
    assert set(copy.state_dict()) == set(online.state_dict())


def test_moco_queue_advances_first_in_first_out():
    backbone = _backbone()
    task = _task("moco", backbone)  # queue of 10 keys, 2 x 4 new keys a step
    (_, keys), _, _ = _step(task, backbone)
    assert int(task.queue_ptr) == 8
    assert torch.allclose(task.queue[:8], torch.nn.functional.normalize(keys, dim=1), atol=1e-6)
    (_, keys2), _, _ = _step(task, backbone, seed=2)
    assert int(task.queue_ptr) == (8 + 8) % 10
    new = torch.nn.functional.normalize(keys2, dim=1)
    assert torch.allclose(task.queue[8:], new[:2], atol=1e-6) and torch.allclose(task.queue[:6], new[2:], atol=1e-6)
    assert torch.equal(enqueue(torch.zeros(3, 1), torch.ones(5, 1), 1), torch.ones(3, 1))  # more keys than rows


def test_moco_pairs_each_query_with_its_own_unshuffled_key():
    backbone = _backbone()
    task = _task("moco", backbone)
    task.eval(), backbone.eval()  # fixed BatchNorm: right after setup the key encoder equals the query encoder
    views, shuffle = task.build_views(_images(), torch.Generator().manual_seed(3))
    q, k = task(backbone, views)
    assert not torch.equal(shuffle, torch.arange(8))
    (q1, q2) = q.chunk(2)
    expected = (infonce(q1, q2, task.queue, 0.2) + infonce(q2, q1, task.queue, 0.2)) / 2
    assert torch.allclose(task.loss((q, k), shuffle)["loss"], expected, atol=1e-5)


def test_dino_center_moves_and_teacher_temperature_follows_progress():
    backbone = _backbone()
    task = _task("dino", backbone)
    views, _ = task.build_views(_images(), torch.Generator().manual_seed(4))
    assert [tuple(v.shape[2:]) for v in views] == [(16, 16)] * 2 + [(8, 8)] * 4
    student, teacher = task(backbone, views)
    assert student.shape == (6, 4, 32) and teacher.shape == (2, 4, 32)
    task.on_step_end(backbone, 0.15)
    assert torch.allclose(task.center, 0.1 * teacher.reshape(-1, 32).mean(0), atol=1e-6)
    assert float(task.progress) == pytest.approx(0.15)
    expected = dino_loss(student, teacher, task.center, 0.1, teacher_temperature(0.15))
    assert torch.allclose(task.loss((student, teacher), None)["loss"], expected)
    assert teacher_temperature(0.15) == pytest.approx(0.055)


def test_simsiam_stops_gradients_through_the_targets():
    from curate.losses import negative_cosine

    backbone = _backbone()
    task = _task("simsiam", backbone)
    (z, p), _, losses = _step(task, backbone)
    assert "z_std" in losses
    weights = list(task.projector.parameters())
    got = torch.autograd.grad(losses["loss"], weights, retain_graph=True)
    # the same loss with targets as constants: equal gradients mean no gradient flows through the targets
    ref = (negative_cosine(p[0], z[1].detach().clone()) + negative_cosine(p[1], z[0].detach().clone())) / 2
    want = torch.autograd.grad(ref, weights, retain_graph=True)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(got, want))
    both_ways = torch.autograd.grad((negative_cosine(p[0], z[1]) + negative_cosine(p[1], z[0])) / 2, weights)
    assert not all(torch.allclose(a, b, atol=1e-7) for a, b in zip(got, both_ways))


def test_teachers_queues_and_centers_are_checkpointed():
    specs = [TaskSpec(n, 1.0, SMALL[n]) for n in ("moco", "byol", "dino")]
    mt = MultiTask(specs, _backbone(), 16)
    with torch.no_grad():
        for t in mt.state_dict().values():
            if t.is_floating_point():
                t.add_(1.0)
        mt.tasks["moco"].queue_ptr.fill_(3)
    state = mt.state_dict()
    for key in ("tasks.moco.queue", "tasks.moco.queue_ptr", "tasks.moco.key_backbone.0.weight",
                "tasks.byol.target_projector.0.weight", "tasks.dino.center", "tasks.dino.progress",
                "tasks.dino.teacher_head.last.weight", "tasks.dino.teacher_backbone.1.running_mean"):
        assert key in state, key
    fresh = MultiTask(specs, _backbone(), 16)
    fresh.load_state_dict(state)  # strict: every teacher, queue and center has a home
    assert all(torch.equal(v, state[k]) for k, v in fresh.state_dict().items())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, small_images):
    return tmp_path_factory.mktemp("ssl") / "ws"  # shared: only the first run scans and decodes


@pytest.mark.slow
@pytest.mark.parametrize("tasks", [["moco"], ["byol"], ["simsiam"], ["dino"], ["simclr", "byol:0.5"]])
def test_short_cli_training_run(tasks, small_images, workspace):
    from curate.cli import main

    args = ["train", str(small_images), "-w", str(workspace), "--epochs", "0.3", "--batch-size", "32"]
    for t in tasks:
        args += ["--task", t]
    assert main(args) == 0
    state = torch.load(workspace / "model" / "checkpoint.pt", weights_only=True)
    assert state["step"] >= 1 and all(torch.isfinite(v).all() for v in state["tasks"].values() if v.is_floating_point())
    if tasks == ["dino"]:  # the checkpoint loads back, teacher and center included (all tasks: test above)
        assert main(args + ["--resume"]) == 0
