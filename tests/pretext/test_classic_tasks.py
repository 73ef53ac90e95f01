"""Classic pretext tasks: their pure helpers (permutations, tiles, patch pairs, Lab, masks, feature maps)
and a short real training run through the CLI for each of them and the redundancy-reduction tasks."""
import json

import pytest
import torch

from curate.cli import main
from curate.losses import masked_mse
from curate.models import BackboneSpec, build_backbone
from curate.models.decoder import ConvDecoder
from curate.models.feature_map import backbone_feature_map
from curate.pretext.colorization import ab_target, lab_to_rgb, rgb_to_lab
from curate.pretext.inpainting import random_box_mask
from curate.pretext.jigsaw import Jigsaw, permutation_set
from curate.transforms.patches import MIN_BACKBONE_INPUT, crop_patches, grid_positions, upsample_patches
from curate.pretext.relative_position import OFFSETS, pair_positions
from curate.transforms import ViewConfig, normalize

NEW_TASKS = ["barlow_twins", "vicreg", "jigsaw", "relative_position", "colorization", "inpainting"]


def _images(b=4, s=30, seed=0):
    return torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [30, 100])
def test_permutation_set_is_distinct_deterministic_and_spread(n):
    perms = permutation_set(n)
    assert perms.shape == (n, 9) and perms.dtype == torch.long
    assert torch.equal(perms.sort(1).values, torch.arange(9).expand(n, 9))  # every row is a permutation
    assert len({tuple(p.tolist()) for p in perms}) == n
    assert torch.equal(perms, permutation_set(n)) and not torch.equal(perms, permutation_set(n, seed=1))
    hamming = (perms[:, None] != perms[None]).sum(-1) + 9 * torch.eye(n, dtype=torch.long)
    assert hamming.min() >= 6  # max-min selection keeps any two orders at least 6 tiles apart


def _assemble(tiles, grid=3):
    """(B, 9, C, t, t) tiles in row-major cell order -> (B, C, 3t, 3t) image (the inverse of the cut)."""
    b, _, c, t, _ = tiles.shape
    return tiles.view(b, grid, grid, c, t, t).permute(0, 3, 1, 4, 2, 5).reshape(b, c, grid * t, grid * t)


def test_tiles_reassemble_to_the_image_under_the_identity_permutation():
    x = _images(s=32)
    tops, lefts = grid_positions(4, 32, tile=10)  # tile == cell: no gap, no jitter; the grid is centred
    assert torch.equal(_assemble(crop_patches(x, tops, lefts, 10)), x[:, :, 1:31, 1:31])
    tops, lefts = grid_positions(4, 32, tile=8, generator=torch.Generator().manual_seed(0))
    jitter = torch.stack([tops, lefts]) - torch.stack(grid_positions(4, 32, tile=10))
    assert jitter.min() >= 0 and jitter.max() <= 2 and jitter.float().std() > 0


def test_jigsaw_views_are_the_tiles_in_the_labelled_order():
    task = Jigsaw(Jigsaw.Config(num_permutations=10, tile_fraction=1.0), feature_dim=512, image_size=30)
    task.views = ViewConfig(size=30, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0, jitter=0.0, grayscale=0.0)
    images = _images()
    views, labels = task.build_views(images, torch.Generator().manual_seed(3))
    assert len(views) == 9 and views[0].shape == (4, 3, MIN_BACKBONE_INPUT, MIN_BACKBONE_INPUT)
    tiles = upsample_patches(crop_patches(normalize(images), *grid_positions(4, 30, 10), 10))  # identity, cut in place
    for i, view in enumerate(views):
        assert torch.allclose(view, tiles[torch.arange(4), task.permutations[labels, i]], atol=1e-4)


def test_upsampled_patches_keep_their_content():
    flat = torch.rand(2, 9, 3, 1, 1).expand(2, 9, 3, 8, 8)  # one colour per patch
    up = upsample_patches(flat)
    assert up.shape == (2, 9, 3, 16, 16) and torch.allclose(up, flat[..., :1, :1].expand_as(up))
    noise = torch.rand(2, 9, 3, 8, 8)
    assert torch.allclose(upsample_patches(noise).mean((-1, -2)), noise.mean((-1, -2)), atol=0.02)
    assert upsample_patches(torch.rand(1, 2, 3, 20, 20)).shape[-1] == 20  # large enough: untouched


@pytest.mark.parametrize("task_name", ["jigsaw", "relative_position"])
def test_patch_tasks_keep_the_last_resnet_stage_at_2x2_or_more(task_name):
    """Regression: the 7-8 px patches of 32 px images reached the last ResNet stage as 1x1 maps,
    where torch's CPU bf16 conv backward returns garbage (inf, 1e29) weight gradients now and then;
    a 1-minute jigsaw run gave a NaN encoder (kNN at chance)."""
    from curate.pretext import MultiTask, TaskSpec
    backbone = build_backbone(BackboneSpec("resnet10", "small_pool"))
    tasks = MultiTask([TaskSpec(task_name)], backbone, 32)
    seen = []
    backbone.layer4.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[-2:]))
    tasks.step_losses(backbone, _images(b=8, s=32), torch.Generator().manual_seed(1))
    assert seen and min(min(shape) for shape in seen) >= 2, seen


def test_relative_position_pairs_sit_at_the_stated_offsets():
    labels = torch.arange(8).repeat(4)
    tops, lefts = pair_positions(labels, 32, patch=10)  # patch == cell: exact grid offsets
    dy, dx = torch.tensor(OFFSETS).T
    assert torch.equal(tops[:, 1] - tops[:, 0], 10 * dy[labels])
    assert torch.equal(lefts[:, 1] - lefts[:, 0], 10 * dx[labels])
    tops, lefts = pair_positions(labels, 32, patch=7, generator=torch.Generator().manual_seed(0))
    assert ((tops[:, 1] - tops[:, 0] - 10 * dy[labels]).abs() <= 3).all()  # jitter within cell - patch
    assert ((lefts[:, 1] - lefts[:, 0] - 10 * dx[labels]).abs() <= 3).all()
    x = _images(b=32, s=32)
    patches = crop_patches(x, tops, lefts, 7)
    i = 5
    assert torch.equal(patches[i, 1], x[i, :, tops[i, 1]:tops[i, 1] + 7, lefts[i, 1]:lefts[i, 1] + 7])


def test_lab_conversion_round_trips_and_matches_reference_colours():
    x = _images(b=2, s=8)
    assert torch.allclose(lab_to_rgb(rgb_to_lab(x)), x, atol=1e-4)
    colours = torch.tensor([[1., 1., 1.], [0., 0., 0.], [1., 0., 0.]]).view(1, 3, 3, 1).permute(0, 2, 1, 3)
    lab = rgb_to_lab(colours)[0, :, :, 0].T  # rows: white, black, red
    reference = torch.tensor([[100., 0., 0.], [0., 0., 0.], [53.24, 80.09, 67.20]])  # CIE Lab, D65
    assert torch.allclose(lab, reference, atol=0.05)
    grey = torch.full((1, 3, 8, 8), 0.4)
    assert ab_target(grey, 2).abs().max() < 1e-3  # grey has no colour


def test_inpainting_loss_ignores_unmasked_pixels():
    target, pred = _images(b=2, s=8), _images(b=2, s=8, seed=1).requires_grad_()
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, 2:4, 3:6] = True
    loss = masked_mse(pred, target, mask)
    expected = ((pred - target)[:, :, 2:4, 3:6] ** 2).mean()
    assert torch.isclose(loss, expected)
    (grad,) = torch.autograd.grad(loss, pred)
    assert grad[~mask.expand_as(grad)].abs().max() == 0
    changed = pred.detach().clone()
    changed[~mask.expand_as(changed)] = 100.0
    assert torch.isclose(masked_mse(changed, target, mask), loss)


def test_random_box_masks_are_one_box_of_the_requested_size():
    mask = random_box_mask(64, 32, 0.25, 0.5, torch.Generator().manual_seed(0))
    assert mask.shape == (64, 1, 32, 32) and mask.dtype == torch.bool
    rows, cols = mask[:, 0].any(2).sum(1), mask[:, 0].any(1).sum(1)
    assert rows.min() >= 8 and rows.max() <= 16 and cols.min() >= 8 and cols.max() <= 16
    assert torch.equal(mask[:, 0].sum((1, 2)), rows * cols)  # filled rectangles, nothing else


def test_feature_map_pools_to_the_backbone_output_and_decodes_to_any_size():
    torch.manual_seed(0)
    backbone = build_backbone(BackboneSpec("resnet18", stem="small_pool")).eval()
    x = _images(b=2, s=32)
    fmap = backbone_feature_map(backbone, x)
    assert fmap.shape == (2, 512, 2, 2)
    assert torch.allclose(fmap.mean((2, 3)), backbone(x), atol=1e-5)
    assert ConvDecoder(512, 3)(fmap, 32).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="ResNet"):
        backbone_feature_map(torch.nn.Linear(3, 3), x)


@pytest.mark.parametrize("tasks", [[t] for t in NEW_TASKS] + [["simclr", "jigsaw:0.5"]], ids=lambda t: "+".join(t))
def test_short_training_run_through_the_cli(tasks, small_images, tmp_path):
    ws = tmp_path / "ws"
    flags = [arg for t in tasks for arg in ("--task", t)]
    assert main(["train", str(small_images), "-w", str(ws), *flags, "--epochs", "0.3", "--batch-size", "32"]) == 0
    assert (ws / "model" / "encoder.pt").exists()
    logged = json.loads((ws / "model" / "train_log.jsonl").read_text().splitlines()[0])
    assert {f"{t.split(':')[0]}/loss" for t in tasks} <= set(logged)
