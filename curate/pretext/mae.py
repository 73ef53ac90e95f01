"""MAE, masked autoencoders (He et al., 2022): hide 75% of the patches, rebuild their pixels from the rest.

Teaches spatial context: to fill in a hidden patch the encoder must model object shape, texture
continuation and how parts sit together, from a quarter of the image. Unlike contrastive tasks it
asks for no invariance to colour or crops, so it keeps colour and fine detail, and its features are
less linearly separable out of the box: they shine after fine-tuning or a (linear/MLP) probe more
than under kNN. Pick it for a ViT backbone, for images whose classes differ in structure rather
than in global colour statistics, or when the downstream use will fine-tune the encoder.

Needs a ViT backbone (`--backbone vit_tiny`): the encoder runs on the visible tokens only (4x less
work), which a convolutional network cannot do. A light decoder owned by the task (mask tokens,
its own fixed position codes, a few transformer blocks) predicts the pixels of every patch; the
loss is the MSE on the masked patches only, by default against per-patch normalised pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torchvision.models.vision_transformer import EncoderBlock

from curate.models.vit import encode_visible, is_vit
from curate.pretext.base import TASKS, PretextTask
from curate.transforms import ViewConfig, make_views, normalize
from curate.transforms.draws import rand


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, S, S) -> (B, L, patch*patch*C), L = (S/patch)^2 patches in row-major order (the ViT's token order)."""
    b, c, s, _ = images.shape
    n = s // patch
    x = images.reshape(b, c, n, patch, n, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, n * n, patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    """(B, L, patch*patch*C) -> (B, C, S, S): the inverse of `patchify`."""
    b, length, _ = patches.shape
    n = int(round(length ** 0.5))
    x = patches.reshape(b, n, n, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, n * patch, n * patch)


def random_masking(noise: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random masking by sorting noise, as in the MAE paper.

    noise: (B, L) uniform; keep: visible patches per sample. Returns ids_keep (B, keep) (the visible
    patches), ids_restore (B, L) (gathering [visible, masked] tokens with it restores patch order) and
    mask (B, L) float, 1 = masked, in patch order.
    """
    ids_shuffle = noise.argsort(dim=1)  # the `keep` lowest-noise patches stay visible
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones_like(noise)
    mask[:, :keep] = 0
    return ids_shuffle[:, :keep], ids_restore, torch.gather(mask, 1, ids_restore)


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      norm_pix: bool = True) -> torch.Tensor:
    """Mean squared error over the masked patches only.

    pred, target: (B, L, P) patch pixels; mask: (B, L), 1 = masked. With `norm_pix` each target patch
    is standardised by its own mean and variance (the paper's better-representation variant).
    """
    if norm_pix:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred.float() - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) fixed 2-D sine-cosine position codes (half the channels for x, half for y)."""
    if dim % 4:
        raise ValueError(f"the decoder width must be a multiple of 4, not {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    angles = [c.reshape(-1, 1).double() * omega for c in (xs, ys)]
    return torch.cat([f(a) for a in angles for f in (torch.sin, torch.cos)], dim=1).float()


class MAEDecoder(nn.Module):
    """Mask tokens + position codes + transformer blocks -> pixels of every patch."""

    def __init__(self, encoder_dim: int, grid: int, patch: int, dim: int = 128, depth: int = 2, heads: int = 4):
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.empty(1, 1, dim).normal_(std=0.02))
        pos = torch.cat([torch.zeros(1, dim), sincos_2d(grid, dim)])  # the class token's slot gets none
        self.register_buffer("pos", pos.unsqueeze(0), persistent=False)  # fixed: rebuilt, not saved
        self.blocks = nn.Sequential(*[EncoderBlock(heads, dim, 4 * dim, 0.0, 0.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, patch * patch * 3)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent: (B, 1 + K, D) encoder output; ids_restore: (B, L) -> (B, L, patch*patch*3)."""
        x = self.embed(latent)
        b, length = ids_restore.shape
        masked = self.mask_token.to(x.dtype).expand(b, length - x.shape[1] + 1, -1)
        tokens = torch.cat([x[:, 1:], masked], dim=1)  # [visible, masked], shuffled order
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        x = torch.cat([x[:, :1], tokens], dim=1) + self.pos
        return self.pred(self.norm(self.blocks(x)))[:, 1:]


@TASKS.register("mae")
class MAE(PretextTask):
    @dataclass
    class Config:
        mask_ratio: float = 0.75
        norm_pix_loss: bool = True
        decoder_dim: int = 128
        decoder_depth: int = 2
        decoder_heads: int = 4
        min_scale: float = 0.2  # random-resized-crop area range, as in the paper

    def __init__(self, cfg: Config, feature_dim: int, image_size: int):
        super().__init__(cfg, feature_dim, image_size)
        if not 0 < cfg.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), not {cfg.mask_ratio}")
        # crops and flips only: colour is part of what the decoder must predict
        self.views = ViewConfig(size=image_size, scale=(cfg.min_scale, 1.0), jitter=0.0, grayscale=0.0, blur=0.0)
        self.decoder: MAEDecoder | None = None
        self.patch = 0

    def setup(self, backbone):
        """Checks the backbone is a ViT for this image size, and builds the decoder for its patch grid."""
        if not is_vit(backbone):
            raise ValueError("mae needs a ViT backbone: use --backbone vit_tiny")
        if backbone.image_size != self.image_size:
            raise ValueError(f"the ViT expects {backbone.image_size} px images, the data is {self.image_size} px")
        self.patch = backbone.patch_size
        c = self.cfg
        self.decoder = MAEDecoder(backbone.hidden_dim, self.image_size // self.patch, self.patch,
                                  c.decoder_dim, c.decoder_depth, c.decoder_heads)

    def build_views(self, images, generator=None):
        """One lightly augmented view; targets are its (B, L, patch*patch*3) patches, in fp32."""
        view = normalize(make_views(images, self.views, generator))
        return [view], patchify(view, self.patch)

    def forward(self, backbone, views, noise: torch.Tensor | None = None):
        """Returns {"pred": (B, L, P) pixels of every patch, "mask": (B, L), 1 = masked}.

        The mask is drawn here from torch's global generator (seeded by the trainer), as in the
        paper's code, because forward never sees the targets; pass `noise` (B, L) to fix it.
        """
        x = views[0]
        length = (self.image_size // self.patch) ** 2
        if noise is None:
            noise = rand((x.shape[0], length), None, x.device)
        keep = max(1, int(length * (1 - self.cfg.mask_ratio)))
        ids_keep, ids_restore, mask = random_masking(noise, keep)
        latent = encode_visible(backbone, x, ids_keep)
        return {"pred": self.decoder(latent, ids_restore), "mask": mask}

    def loss(self, out, targets):
        return {"loss": masked_patch_loss(out["pred"], targets, out["mask"], self.cfg.norm_pix_loss)}
