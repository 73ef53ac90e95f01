"""Per-layer linear probes: how linearly decodable the classes are after each stage of the backbone.

Features are globally average-pooled after each residual stage of a torchvision ResNet (layer1..4;
layer4 pooled is the embedding itself). A representation that peaks before the last stage tells
that the pretext task specialised the top of the network (rotation and jigsaw tend to do this).
Other architectures have no such stages here: `has_stages` says so and callers skip them.

Example:
    >>> feats = embed_stages(backbone, images, rows, mean, std)     # {"layer1": (N, 64), ...}
    >>> layer_probes(feats, y, train_rows, test_rows)                  # {"layer1": 0.41, ...}
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from curate.evaluate.linear_probe import linear_probe
from curate.progress import Progress, report
from curate.train.device import autocast_factory
from curate.transforms import normalize, to_float

STAGES = ("layer1", "layer2", "layer3", "layer4")


def has_stages(backbone: nn.Module) -> bool:
    """True for torchvision-style ResNets (conv1, bn1, relu, maxpool, layer1..layer4)."""
    return all(hasattr(backbone, name) for name in ("conv1", "bn1", "relu", "maxpool", *STAGES))


def stage_features(backbone: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Global-average-pooled output of each ResNet stage for a normalised batch x (B, 3, H, W).

    Returns {"layer1": (B, C1), ..., "layer4": (B, C4)}; for resnet18 C = 64, 128, 256, 512.
    """
    if not has_stages(backbone):
        raise TypeError(f"{type(backbone).__name__} has no ResNet stages (layer1..layer4)")
    h = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
    out = {}
    for name in STAGES:
        h = getattr(backbone, name)(h)
        out[name] = h.mean((2, 3))
    return out


@torch.no_grad()
def embed_stages(backbone: nn.Module, images: np.ndarray, rows: np.ndarray, mean, std, batch_size: int = 256,
                 precision: str = "auto", progress: Progress | None = None) -> dict[str, np.ndarray]:
    """{stage: (len(rows), C) float32} pooled stage features of images[rows] ((N, S, S, 3) uint8).

    `precision` as in `embed_images` (bf16 where the hardware runs it natively), so layer4 matches the embedding.
    """
    device = next(backbone.parameters()).device
    autocast = autocast_factory(device, precision)
    rows = np.asarray(rows)
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        x = normalize(to_float(torch.from_numpy(images[idx]).to(device)), mean, std)
        with autocast():
            stages = stage_features(backbone, x)
        for name, feats in stages.items():
            if name not in out:
                out[name] = np.zeros((len(rows), feats.shape[1]), np.float32)
            out[name][start:start + len(idx)] = feats.float().cpu().numpy()
        report(progress, start + len(idx), len(rows), stage="per-layer features", unit="img")
    return out


def layer_probes(features: dict[str, np.ndarray], labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                 seed: int = 0, progress: Progress | None = None) -> dict[str, float]:
    """Linear-probe top-1 per stage. features: {stage: (N, C)}; labels (N,); train, test: row indices into them."""
    scores = {}
    for i, (name, feats) in enumerate(features.items()):
        scores[name] = linear_probe(feats[train], labels[train], feats[test], labels[test], seed=seed).top1
        report(progress, i + 1, len(features), stage="per-layer probes", unit="layer")
    return scores
