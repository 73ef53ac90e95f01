"""The spatial feature map of a backbone: its last convolutional stage, before global pooling.

Dense pretext tasks (colorization, inpainting) decode from this map instead of the pooled vector,
so that the backbone, not the head, has to keep track of where things are.
"""
from __future__ import annotations

import torch
import torch.nn as nn

RESNET_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def backbone_feature_map(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) normalised images -> (B, C, h, w) layer4 map of a torchvision ResNet.

    C is the backbone's feature_dim (512 for resnet18/34, 2048 for resnet50); h = H/32 with the
    "imagenet" stem, H/16 with "small_pool", H/8 with "small" (rounded up). Runs the same modules as
    `backbone(x)` up to, not including, the average pool, so gradients reach the shared weights.
    """
    missing = [name for name in RESNET_STAGES if not hasattr(backbone, name)]
    if missing:
        raise ValueError(f"{type(backbone).__name__} has no {', '.join(missing)}: "
                        "backbone_feature_map supports torchvision ResNets")
    for name in RESNET_STAGES:
        x = getattr(backbone, name)(x)
    return x
