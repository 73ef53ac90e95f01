"""Fine-tuning transfer: the whole encoder plus a linear head, trained on a few labelled images.

The linear probe asks how much the frozen features already separate the classes; fine-tuning asks
what a user gets when they train their backbone on their own labels, the downstream use the
exported state_dict is for. Both on the same labelled subset, so the rows compare:

    >>> subset = labelled_subset(train_rows, y, 0.01, seed=0)      # 1% of the labelled training images
    >>> finetune_top1(model, images, subset, y, test_rows, mean, std, FinetuneConfig())

Light augmentation only (crops of at least half the area, flips): the encoder already learnt the
heavy invariances; the labels teach the classes.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from curate.progress import Progress, report
from curate.train.device import autocast_factory
from curate.transforms import normalize, to_float
from curate.transforms.views import random_resized_crop


@dataclass
class FinetuneConfig:
    """How the encoder is fine-tuned: about `epochs` passes over the labelled images, between `min_steps`
    and `steps` (so a report's cost is bounded in advance: at most `steps` x `batch_size` images)."""

    fractions: tuple[float, ...] = (0.01, 0.1)  # of the labelled training images
    steps: int = 200  # the most
    min_steps: int = 50
    epochs: float = 30.0
    batch_size: int = 128
    lr: float = 2e-3  # the head's; the backbone learns `backbone_lr_scale` times as fast (keeps what SSL learnt)
    backbone_lr_scale: float = 0.5  # measured on CIFAR-10 at 10%: 0.1 gave 52.8%, 0.5 58.0% (probe 51.0%)
    weight_decay: float = 0.05
    warmup: float = 0.1  # fraction of the steps
    min_scale: float = 0.5  # crop area
    test_images: int = 2_000
    seed: int = 0


def labelled_subset(rows: np.ndarray, y: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """About `fraction` of `rows`, the same fraction of every class and at least one image of each (sorted)."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows)
    picked = []
    for c in np.unique(y[rows]):
        members = rows[y[rows] == c]
        n = max(1, int(round(fraction * len(members))))
        picked.append(rng.choice(members, n, replace=False))
    return np.sort(np.concatenate(picked)) if picked else rows[:0]


def steps_for(n_images: int, cfg: FinetuneConfig) -> int:
    """Steps to fine-tune on `n_images`: `cfg.epochs` passes, at least `cfg.min_steps`, at most `cfg.steps`."""
    return min(cfg.steps, max(cfg.min_steps, math.ceil(cfg.epochs * n_images / cfg.batch_size)))


def lr_factor(step: int, steps: int, warmup: float) -> float:
    """Linear warm-up, then cosine decay to zero."""
    warm = max(1, int(warmup * steps))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def finetune_top1(model: torch.nn.Module, images: np.ndarray, train_rows: np.ndarray, y: np.ndarray,
                  test_rows: np.ndarray, mean, std, cfg: FinetuneConfig, progress: Progress | None = None,
                  stage: str = "fine-tune") -> float:
    """Top-1 on images[test_rows] of a copy of `model` + a linear head trained on images[train_rows].

    images (N, S, S, 3) uint8, y (N,) class indices (row = image). `model` itself is left untouched.
    """
    device = next(model.parameters()).device
    autocast = autocast_factory(device)
    classes = np.unique(y[train_rows])
    target = torch.from_numpy(np.searchsorted(classes, y)).to(device)  # classes never trained are never predicted
    net = copy.deepcopy(model).eval()
    with torch.no_grad(), autocast():  # the feature size, in eval mode: a train-mode pass would move BN statistics
        dim = net(normalize(to_float(torch.from_numpy(images[train_rows[:2]]).to(device)), mean, std)).shape[1]
    net.train()
    head = torch.nn.Linear(dim, len(classes)).to(device)
    opt = torch.optim.AdamW([{"params": net.parameters(), "lr": cfg.lr * cfg.backbone_lr_scale},
                             {"params": head.parameters(), "lr": cfg.lr}], weight_decay=cfg.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator(device=device).manual_seed(cfg.seed)
    size, steps = images.shape[1], steps_for(len(train_rows), cfg)
    for step in range(steps):
        for group, lr in zip(opt.param_groups, base):
            group["lr"] = lr * lr_factor(step, steps, cfg.warmup)
        idx = rng.choice(train_rows, cfg.batch_size, replace=len(train_rows) < cfg.batch_size)
        x = to_float(torch.from_numpy(images[idx]).to(device))
        x = normalize(random_resized_crop(x, size, (cfg.min_scale, 1.0), generator=gen), mean, std)
        with autocast():
            logits = head(net(x))
        loss = F.cross_entropy(logits.float(), target[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        report(progress, step + 1, steps, stage=stage, unit="step")
    return _top1(torch.nn.Sequential(net, head).eval(), images, test_rows, target, mean, std, autocast,
                 cfg.batch_size * 2)


@torch.no_grad()
def _top1(net, images, rows, target, mean, std, autocast, batch_size: int) -> float:
    device = next(net.parameters()).device
    correct = 0
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        with autocast():
            logits = net(normalize(to_float(torch.from_numpy(images[idx]).to(device)), mean, std))
        correct += int((logits.float().argmax(1) == target[idx]).sum())
    return correct / max(1, len(rows))
