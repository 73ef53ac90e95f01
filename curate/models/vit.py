"""Compact Vision Transformers: torchvision's stock `VisionTransformer`, plus the visible-token pass MAE needs.

Nothing differs from the stock class but `heads = Identity()` (as ResNets get `fc = Identity()`), so
the model returns the class token after the final LayerNorm, (B, hidden_dim), and its state_dict
loads into `torchvision.models.VisionTransformer(image_size, patch_size, **VIT_SIZES[name])` once that
model's `heads` is an Identity too.

A ViT's stem is its patch embedding, so for ViTs `BackboneSpec.stem` names the patch size: "p4" is
4x4-pixel patches. The position embeddings fix the input size; when a spec gives none it is
TOKEN_GRID patches a side, i.e. 8 x 8 = 64 tokens (p4 for 32 px, p8 for 64 px, p16 for 128 px),
which keeps a ViT's cost the same at every resolution: attention is quadratic in the token count.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torchvision.models import VisionTransformer

# DeiT-Ti and DeiT-S (Touvron et al., 2021): the sizes people compare against
VIT_SIZES: dict[str, dict[str, int]] = {
    "vit_tiny": {"num_layers": 12, "num_heads": 3, "hidden_dim": 192, "mlp_dim": 768},
    "vit_small": {"num_layers": 12, "num_heads": 6, "hidden_dim": 384, "mlp_dim": 1536},
}
TOKEN_GRID = 8  # patches per side when the image size follows from the patch size


def parse_patch_stem(stem: str) -> int:
    """'p4' -> 4 (the patch side in pixels)."""
    if not (isinstance(stem, str) and stem.startswith("p") and stem[1:].isdigit() and int(stem[1:]) > 0):
        raise ValueError(f"a ViT's stem is its patch size, e.g. 'p4' (4x4-pixel patches, for 32 px images), "
                         f"not {stem!r}")
    return int(stem[1:])


def vit_stem(image_size: int, stem: str | None = None) -> str:
    """The patch stem a ViT trains with on `image_size` px images: an 8x8 patch grid.

    The trainer rebuilds its backbone from (name, stem) alone, so the image size must follow from
    the patch size; a given `stem` is checked against that.
    """
    if image_size % TOKEN_GRID:
        raise ValueError(f"ViT backbones need an image size divisible by {TOKEN_GRID}, not {image_size}: "
                         "set --image-size")
    expected = f"p{image_size // TOKEN_GRID}"
    if stem is not None and stem != expected:
        raise ValueError(f"ViT stem {stem!r} does not fit {image_size} px images: use {expected!r} "
                         f"({TOKEN_GRID}x{TOKEN_GRID} patches) or change --image-size")
    return expected


def build_vit(name: str, stem: str, image_size: int | None = None) -> VisionTransformer:
    """A randomly initialised stock VisionTransformer of size `name` returning (B, hidden_dim) features."""
    patch = parse_patch_stem(stem)
    size = image_size if image_size is not None else patch * TOKEN_GRID
    if size % patch:
        raise ValueError(f"image size {size} is not a multiple of the patch size {patch} (stem {stem!r})")
    model = VisionTransformer(image_size=size, patch_size=patch, **VIT_SIZES[name])
    model.heads = nn.Identity()  # keeps the stock key names, so the state_dict loads into torchvision
    return model


def is_vit(model: nn.Module) -> bool:
    return isinstance(model, VisionTransformer)


def patch_tokens(vit: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) normalised images -> (B, L, D) patch embeddings, L = (S/p)^2 in row-major order."""
    return vit.conv_proj(x).flatten(2).transpose(1, 2)


def encode_visible(vit: VisionTransformer, x: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
    """Run a stock VisionTransformer's encoder on a subset of patches.

    x: (B, 3, S, S) normalised images; ids_keep: (B, K) indices of the patches to keep (None: all).
    Returns (B, 1 + K, D): the class token then the kept tokens, after `encoder.ln`. With all patches
    kept in order, token 0 equals the stock forward's output. Position embeddings are added before
    the selection, so every kept token still knows where it came from.
    """
    tokens = patch_tokens(vit, x)
    pos = vit.encoder.pos_embedding  # (1, 1 + L, D), the class token's slot first
    tokens = tokens + pos[:, 1:]
    if ids_keep is not None:
        tokens = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    cls = (vit.class_token + pos[:, :1]).expand(tokens.shape[0], -1, -1)
    out = vit.encoder.layers(vit.encoder.dropout(torch.cat([cls, tokens], dim=1)))
    return vit.encoder.ln(out)
