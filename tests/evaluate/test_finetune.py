"""Fine-tuning transfer (`curate.evaluate.finetune`): the labelled subset, the schedule, and a real
fine-tuning run on real images that learns the classes and leaves the given encoder untouched."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from curate.evaluate.finetune import FinetuneConfig, finetune_top1, labelled_subset, lr_factor, steps_for
from curate.models import BackboneSpec, build_backbone


def test_labelled_subset_takes_the_fraction_of_every_class_and_one_at_least():
    y = np.array([0] * 200 + [1] * 50 + [2] * 3 + [-1] * 10)
    rows = np.arange(253)  # the unlabelled rows are not offered
    subset = labelled_subset(rows, y, 0.1, seed=0)
    assert np.all(np.diff(subset) > 0) and set(subset) <= set(rows)
    assert np.bincount(y[subset]).tolist() == [20, 5, 1]  # 3 * 0.1 rounds to 0: one image still
    assert np.array_equal(subset, labelled_subset(rows, y, 0.1, seed=0))
    assert not np.array_equal(subset, labelled_subset(rows, y, 0.1, seed=1))


def test_steps_follow_the_labelled_set_within_bounds():
    cfg = FinetuneConfig()
    assert steps_for(18, cfg) == cfg.min_steps and steps_for(450, cfg) == 106 and steps_for(4494, cfg) == cfg.steps
    assert steps_for(4494, FinetuneConfig(steps=20)) == 20  # the cap wins over the minimum


def test_schedule_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:])) and factors[-1] < 0.01


def two_classes(bundled_images, names=("automobile", "frog"), per_class: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Real CIFAR-10 images of two classes as a (N, 32, 32, 3) uint8 array and their labels."""
    images, labels = [], []
    for label, name in enumerate(names):
        for f in sorted((bundled_images / name).glob("*.jpg"))[:per_class]:
            with Image.open(f) as img:
                images.append(np.asarray(img.convert("RGB")))
            labels.append(label)
    return np.stack(images), np.array(labels)


def test_finetuning_learns_real_classes_and_leaves_the_encoder_alone(bundled_images):
    images, y = two_classes(bundled_images)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = np.sort(order[:300]), np.sort(order[300:])
    torch.manual_seed(0)
    model = build_backbone(BackboneSpec("resnet10", stem="small_pool")).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = FinetuneConfig(steps=60, batch_size=64, lr=3e-3, backbone_lr_scale=1.0)
    seen = []
    top1 = finetune_top1(model, images, train, y, test, [0.5] * 3, [0.25] * 3, cfg,
                         progress=lambda done, total, info: seen.append((done, total, info["stage"])))
    assert top1 > 0.75  # cars against frogs: chance is about 0.5
    assert seen[-1] == (60, 60, "fine-tune")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    untrained = finetune_top1(model, images, train, y, test, [0.5] * 3, [0.25] * 3,
                              FinetuneConfig(steps=1, batch_size=64, lr=1e-6))
    assert untrained < top1
