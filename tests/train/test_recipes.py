"""The recipe levers of bench/ssl_quality.py on real images: multi-crop SimCLR, a scaled-down start,
an averaged (EMA) encoder, flip-averaged embeddings, and the automatic default recipe by image size."""
import json

import numpy as np
import pytest
import torch

from curate.data.cache import image_cache
from curate.data.scan import scan_folder
from curate.embed import embed_images
from curate.losses import multi_view_nt_xent, nt_xent
from curate.models import BackboneSpec, build_backbone
from curate.pretext import TaskSpec
from curate.pretext.base import MultiTask
from curate.train import TrainConfig, train
from curate.train.presets import default_recipe
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD


@pytest.fixture(scope="module")
def cache(small_images, tmp_path_factory):
    manifest, _ = scan_folder(small_images)
    return image_cache(small_images, manifest, 32, tmp_path_factory.mktemp("cache"))


def test_multi_view_loss_is_nt_xent_for_two_views_and_pulls_small_crops_to_the_whole_image():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    assert torch.isclose(multi_view_nt_xent([a, b], 2, 0.2), nt_xent(a, b, 0.2), atol=1e-6)
    small_far, small_near = torch.randn(16, 8, generator=g), a + 0.01 * torch.randn(16, 8, generator=g)
    assert multi_view_nt_xent([a, a, small_near], 2) < multi_view_nt_xent([a, a, small_far], 2)
    # two small crops that agree with each other but not with the whole image earn nothing
    local = torch.randn(16, 8, generator=g)
    assert multi_view_nt_xent([a, a, local, local], 2) > multi_view_nt_xent([a, a, a, a], 2)
    with pytest.raises(ValueError, match="at least 2 views"):
        multi_view_nt_xent([a], 1)


def test_simclr_local_crops_and_scaled_down_start(cache):
    backbone = build_backbone(BackboneSpec("resnet10", "small_pool"))
    x = torch.from_numpy(np.array(cache[:8])).permute(0, 3, 1, 2).float() / 255
    task = MultiTask([TaskSpec("simclr", 1.0, {"local_crops": 3})], backbone, 32).tasks["simclr"]
    views, _ = task.build_views(x, torch.Generator().manual_seed(0))
    assert [tuple(v.shape[-2:]) for v in views] == [(32, 32)] * 2 + [(16, 16)] * 3
    assert torch.isfinite(task.loss(task(backbone, views), None)["loss"])
    task = MultiTask([TaskSpec("simclr", 1.0, {"low_res_size": 24, "low_res_fraction": 0.5})], backbone, 32).tasks["simclr"]
    assert task.build_views(x)[0][0].shape[-1] == 24  # the first half of the budget on 24 px views ...
    task.on_step_end(backbone, 0.49)
    assert task.build_views(x)[0][0].shape[-1] == 24
    task.on_step_end(backbone, 0.5)
    assert task.build_views(x)[0][0].shape[-1] == 32  # ... then full size


def test_ema_encoder_is_exported_and_resumed(cache, tmp_path):
    ids = np.arange(len(cache))
    cfg = dict(batch_size=32, stem="small", health_minutes=0, seed=3)
    online = train(cache, ids, TrainConfig(epochs=0.5, **cfg), tmp_path / "online")
    averaged = train(cache, ids, TrainConfig(epochs=0.5, ema=0.9, **cfg), tmp_path / "ema")
    state = torch.load(tmp_path / "ema" / "checkpoint.pt", weights_only=True)
    assert "averaged" in state and "averaged" not in torch.load(tmp_path / "online" / "checkpoint.pt", weights_only=True)
    # same seed, same steps: the online weights agree, the exported EMA weights do not
    key = "conv1.weight"
    assert torch.allclose(state["backbone"][key], online.backbone.state_dict()[key], atol=1e-5)
    assert not torch.allclose(averaged.backbone.state_dict()[key], online.backbone.state_dict()[key], atol=1e-5)
    assert torch.allclose(averaged.backbone.state_dict()[key], state["averaged"][f"module.{key}"])
    resumed = train(cache, ids, TrainConfig(epochs=1.0, ema=0.9, **cfg), tmp_path / "ema", resume=True)
    n_averaged = torch.load(tmp_path / "ema" / "checkpoint.pt", weights_only=True)["averaged"]["n_averaged"]
    assert int(n_averaged) == resumed.steps == 6  # the average went on from where it stopped


def test_flip_averaged_embedding_is_mirror_invariant(cache):
    torch.manual_seed(0)
    model = build_backbone(BackboneSpec("resnet10", "small_pool")).eval()
    rows = np.arange(16)
    mirrored = np.ascontiguousarray(cache[:16, :, ::-1])
    plain = embed_images(model, cache, rows, IMAGENET_MEAN, IMAGENET_STD, precision="fp32")
    flip = embed_images(model, cache, rows, IMAGENET_MEAN, IMAGENET_STD, precision="fp32", flip=True)
    flip_of_mirror = embed_images(model, mirrored, rows, IMAGENET_MEAN, IMAGENET_STD, precision="fp32", flip=True)
    np.testing.assert_allclose(flip, flip_of_mirror, atol=1e-5)
    assert np.allclose(np.linalg.norm(flip, axis=1), 1, atol=1e-5) and not np.allclose(plain, flip, atol=1e-3)


def test_curate_train_without_a_preset_uses_the_default_recipe_and_says_which(small_images, tmp_path):
    from curate.cli import main

    ws = tmp_path / "ws"
    assert main(["train", str(small_images), "-w", str(ws), "--epochs", "0.2", "--batch-size", "32"]) == 0
    config = json.loads((ws / "model" / "config.json").read_text())
    expected = default_recipe(32)
    assert config["recipe"] == expected["recipe"] and "32 px" in config["recipe"]
    assert config["tasks"][0]["params"] == expected["tasks"][0]["params"]
    assert default_recipe(128)["recipe"] != expected["recipe"]  # photos get their own recipe
