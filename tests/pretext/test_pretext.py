"""Contract test over every registered pretext task, multi-task combination, --task parsing."""
import pytest
import torch

from curate.models import BackboneSpec, build_backbone, feature_dim
from curate.pretext import TASKS, MultiTask, TaskSpec, parse_task
from curate.pretext.base import build_task


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone(BackboneSpec("resnet18", stem="small"))


@pytest.fixture(scope="module")
def preset_backbone():
    """name -> the backbone a task's preset trains (mae needs a ViT), built once per architecture."""
    from curate.models.vit import VIT_SIZES, vit_stem
    from curate.train.presets import config_from_dict, load_preset, preset_names

    built = {}

    def get(task: str):
        # a task without a preset fails test_every_task_has_a_preset, not this contract test
        name = config_from_dict(load_preset(task)).backbone if task in preset_names() else "resnet18"
        if name not in built:
            torch.manual_seed(0)
            stem = vit_stem(32) if name in VIT_SIZES else "small"
            built[name] = build_backbone(BackboneSpec(name, stem, 32))
        return built[name]
    return get


def _images(b=8, s=32):
    return torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", TASKS.names())
def test_task_contract(name, preset_backbone):
    backbone = preset_backbone(name)
    task = build_task(TaskSpec(name), feature_dim(backbone), 32)
    task.setup(backbone)
    views, targets = task.build_views(_images(), torch.Generator().manual_seed(1))
    assert isinstance(views, list) and all(v.shape[0] == 8 and v.shape[1] == 3 for v in views)
    losses = task.loss(task(backbone, views), targets)
    assert "loss" in losses and losses["loss"].ndim == 0 and torch.isfinite(losses["loss"])
    params = list(backbone.parameters()) + list(task.parameters())
    grads = torch.autograd.grad(losses["loss"], params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads[: len(list(backbone.parameters()))])
    task.on_step_end(backbone, 0.5)
    assert task.__doc__ or type(task).__module__, "every task documents what it teaches"


def test_multitask_weights_and_logs_each_task(backbone):
    mt = MultiTask([TaskSpec("simclr", 1.0), TaskSpec("rotation", 0.5)], backbone, 32)
    logs = mt.step_losses(backbone, _images(), torch.Generator().manual_seed(0))
    expected = logs["simclr/loss"] + 0.5 * logs["rotation/loss"]
    assert torch.isclose(logs["loss"], expected)
    assert "rotation/accuracy" in logs


def test_parse_task():
    assert parse_task("rotation:0.5") == TaskSpec("rotation", 0.5)
    assert parse_task("simclr") == TaskSpec("simclr", 1.0)
    with pytest.raises(ValueError, match="simclr"):
        parse_task("nope")
    with pytest.raises(ValueError, match="weight"):
        parse_task("simclr:abc")


def test_unknown_task_parameter_is_rejected(backbone):
    with pytest.raises(ValueError, match="temperature"):
        build_task(TaskSpec("simclr", params={"temprature": 0.1}), 512, 32)


def test_rotation_rotates_each_sample_by_its_target():
    from curate.pretext.rotation import rotate_batch

    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    k = torch.tensor([1, 3])
    out = rotate_batch(x, k)
    assert torch.equal(out[0], torch.rot90(x[0], 1, (1, 2))) and torch.equal(out[1], torch.rot90(x[1], 3, (1, 2)))


def test_every_task_has_a_preset_that_builds_a_config():
    from curate.train.presets import config_from_dict, load_preset, preset_names

    assert set(TASKS.names()) <= set(preset_names())
    for name in TASKS.names():
        cfg = config_from_dict(load_preset(name))
        assert cfg.tasks[0].name == name
