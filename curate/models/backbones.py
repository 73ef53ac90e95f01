"""Backbones: stock torchvision architectures whose `state_dict` loads back into the stock model.

The only change we make is the stem, for small images (where the ImageNet stem, a 7x7 stride-2
conv and a max-pool, would throw away 15/16 of the pixels in two layers):
  "imagenet"   torchvision's own stem (photos of 96 px and more)
  "small"      3x3 stride-1 conv, no max-pool: full resolution in layer1 (the CIFAR ResNet)
  "small_pool" 3x3 stride-1 conv, then the max-pool: layer1 at half resolution, ~3x faster on a CPU
`fc` is replaced by Identity, so the model returns pooled features (B, feature_dim).
ViTs (`vit_tiny`, `vit_small`: torchvision's VisionTransformer, see curate/models/vit.py) name their
patch size as their stem ("p4") and return the class token.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn as nn
import torchvision

from curate.models.vit import VIT_SIZES, build_vit
from curate.registry import Registry

BACKBONES: Registry = Registry("backbone")


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to rebuild the architecture an `encoder.pt` belongs to."""

    name: str = "resnet18"
    stem: str = "small"  # ResNets: one of STEMS; ViTs: the patch size, "p4"
    image_size: int | None = None  # input side in px: fixes a ViT's position embeddings; ResNets ignore it

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneSpec":
        return cls(**d)


STEMS = ("imagenet", "small", "small_pool")


def _resnet(factory):
    def build(stem: str, image_size: int | None = None) -> nn.Module:  # any input size works
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}, not {stem!r}")
        model = factory(weights=None)
        if stem != "imagenet":
            model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        if stem == "small":
            model.maxpool = nn.Identity()
        model.fc = nn.Identity()  # keeps the stock key names, so the state_dict loads into torchvision
        return model
    return build


def resnet10(weights=None) -> torchvision.models.ResNet:
    """ResNet-18 with one block per stage instead of two: half the compute, and still the stock
    class, so its state_dict loads into `torchvision.models.resnet.ResNet(BasicBlock, [1, 1, 1, 1])`."""
    return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])


BACKBONES.register("resnet10")(_resnet(resnet10))
for _name in ("resnet18", "resnet34", "resnet50"):
    BACKBONES.register(_name)(_resnet(getattr(torchvision.models, _name)))
for _name in VIT_SIZES:
    BACKBONES.register(_name)(partial(build_vit, _name))


def build_backbone(spec: BackboneSpec) -> nn.Module:
    """A randomly initialised backbone in channels_last layout, returning (B, feature_dim) features."""
    model = BACKBONES.get(spec.name)(spec.stem, spec.image_size)
    return model.to(memory_format=torch.channels_last)


def feature_dim(model: nn.Module) -> int:
    """Width of the pooled features a backbone returns."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        size = getattr(model, "image_size", 32)  # a ViT takes only the size its position embeddings fit
        dim = model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device)).shape[1]
        model.train(was_training)
    return dim

