"""MAE and ViT backbones: masking, patch round trip, masked-only loss, stock-torchvision round trip, CLI runs."""
import json

import pytest
import torch
import torchvision

from curate.embed.encoder import backbone_spec
from curate.models import BackboneSpec, build_backbone, feature_dim
from curate.models.vit import VIT_SIZES, encode_visible, vit_stem
from curate.pretext import TaskSpec
from curate.pretext.base import build_task
from curate.pretext.mae import masked_patch_loss, patchify, random_masking, unpatchify


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_backbone(BackboneSpec("vit_tiny", "p4", 32))


def test_masking_keeps_a_quarter_per_sample_and_restores_order():
    noise = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    ids_keep, ids_restore, mask = random_masking(noise, keep=16)
    assert ids_keep.shape == (5, 16)
    assert torch.equal(mask.sum(1), torch.full((5,), 48.0))  # 75% masked in every sample
    for b in range(5):
        assert set(ids_keep[b].tolist()) == set((mask[b] == 0).nonzero().flatten().tolist())
    shuffled = torch.argsort(noise, dim=1)  # the order the tokens are in after masking
    assert torch.equal(torch.gather(shuffled, 1, ids_restore), torch.arange(64).expand(5, 64))


def test_patchify_round_trip_and_token_order():
    x = torch.rand(2, 3, 32, 32)
    patches = patchify(x, 4)
    assert patches.shape == (2, 64, 48)
    assert torch.equal(unpatchify(patches, 4), x)
    # patch 9 is row 1, column 1 of the 8x8 grid, as in the ViT's flattened conv_proj output
    assert torch.equal(patches[0, 9], x[0, :, 4:8, 4:8].permute(1, 2, 0).reshape(-1))


def test_loss_ignores_visible_patches():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 64, 48, generator=g), torch.randn(4, 64, 48, generator=g)
    _, _, mask = random_masking(torch.rand(4, 64, generator=g), keep=16)
    for norm_pix in (True, False):
        base = masked_patch_loss(pred, target, mask, norm_pix)
        changed = pred + 10 * (1 - mask).unsqueeze(-1)  # only the visible patches move
        assert torch.allclose(masked_patch_loss(changed, target, mask, norm_pix), base)
        assert not torch.allclose(masked_patch_loss(pred + 10 * mask.unsqueeze(-1), target, mask, norm_pix), base)
    perfect = masked_patch_loss(target, target, mask, norm_pix=False)
    assert perfect == 0


def test_vit_state_dict_loads_into_stock_torchvision(vit, tmp_path):
    torch.save({k: v.contiguous() for k, v in vit.state_dict().items()}, tmp_path / "encoder.pt")
    stock = torchvision.models.VisionTransformer(image_size=32, patch_size=4, **VIT_SIZES["vit_tiny"])
    stock.heads = torch.nn.Identity()
    stock.load_state_dict(torch.load(tmp_path / "encoder.pt", weights_only=True))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = vit.eval()(x), stock.eval()(x)
        all_tokens = encode_visible(stock, x)  # the visible-token pass with every patch kept
    assert ours.shape == (3, 192) and feature_dim(vit) == 192
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(all_tokens[:, 0], theirs, atol=1e-5)


def test_vit_stem_fixes_an_8x8_grid():
    assert vit_stem(32) == "p4" and vit_stem(64, "p8") == "p8"
    assert build_backbone(BackboneSpec("vit_tiny", "p8")).image_size == 64
    with pytest.raises(ValueError, match="p4"):
        vit_stem(32, "small_pool")
    with pytest.raises(ValueError, match="patch size"):
        build_backbone(BackboneSpec("vit_tiny", "small"))


def test_mae_task_trains_the_vit_and_refuses_a_resnet(vit):
    task = build_task(TaskSpec("mae"), 192, 32)
    with pytest.raises(ValueError, match="mae needs a ViT backbone: use --backbone vit_tiny"):
        task.setup(build_backbone(BackboneSpec("resnet18", "small")))
    task.setup(vit)
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    views, targets = task.build_views(images, torch.Generator().manual_seed(1))
    out = task(vit.train(), views)
    assert out["pred"].shape == targets.shape == (4, 64, 48) and out["mask"].sum() == 4 * 48
    loss = task.loss(out, targets)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and vit.conv_proj.weight.grad.abs().sum() > 0


def test_config_without_a_backbone_entry_still_loads():
    old = {"architecture": "resnet18", "stem": "small_pool", "image_size": 32}  # configs written before ViTs
    assert backbone_spec(old) == BackboneSpec("resnet18", "small_pool", 32)
    assert backbone_spec({**old, "backbone": BackboneSpec("vit_tiny", "p4", 32).to_dict()}).name == "vit_tiny"


def test_mae_preset_trains_embeds_and_evaluates_through_the_cli(small_images, tmp_path):
    from curate.cli import main

    ws = tmp_path / "ws"
    args = ["--preset", "mae", "--epochs", "0.3", "--batch-size", "32"]
    assert main(["train", str(small_images), "-w", str(ws), *args]) == 0
    config = json.loads((ws / "model" / "config.json").read_text())
    assert config["backbone"] == {"name": "vit_tiny", "stem": "p4", "image_size": 32}
    assert main(["embed", str(small_images), "-w", str(ws)]) == 0
    assert main(["eval", "-w", str(ws), "--finetune-steps", "5"]) == 0  # random-weights ViT from config.json
    assert json.loads((ws / "reports" / "eval.json").read_text())["finetune"]["10%"]["labelled_images"] >= 10


def test_mae_on_a_resnet_says_what_to_do(small_images, tmp_path, capsys):
    from curate.cli import main

    # a lone --task mae takes its preset (a ViT); asking for a ResNet explicitly gets a clear error
    assert main(["train", str(small_images), "-w", str(tmp_path / "ws"), "--task", "mae", "--backbone", "resnet18",
                 "--epochs", "0.1"]) == 2
    assert "mae needs a ViT backbone: use --backbone vit_tiny" in capsys.readouterr().err
