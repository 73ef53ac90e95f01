"""A small upsampling decoder from a backbone feature map to a dense map (pixels, colours)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ConvDecoder(nn.Module):
    """(B, C_in, h, w) feature map -> (B, C_out, size, size) dense prediction.

    A 1x1 conv reduces C_in to widths[0]; each following block resizes bilinearly to the next size of
    a geometric ladder from h to `size` and applies conv3x3-BN-ReLU, narrowing to the next width;
    a final 1x1 conv gives C_out channels (no activation: targets are regression values). Channels
    shrink as resolution grows, so full-resolution output stays cheap next to the backbone. Sizes are
    worked out per call, so one decoder serves every stem and image size.
    """

    def __init__(self, in_channels: int, out_channels: int, widths: tuple[int, ...] = (256, 128, 64, 32)):
        super().__init__()
        if len(widths) < 2:
            raise ValueError("widths needs at least two entries: the reduced width and one upsampling block")
        self.reduce = _conv_bn_relu(in_channels, widths[0], 1)
        self.blocks = nn.ModuleList(_conv_bn_relu(a, b, 3) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Conv2d(widths[-1], out_channels, 1)

    def forward(self, fmap: torch.Tensor, size: int) -> torch.Tensor:
        x, h, n = self.reduce(fmap), fmap.shape[-1], len(self.blocks)
        for i, block in enumerate(self.blocks, start=1):
            s = size if i == n else max(1, round(h * (size / h) ** (i / n)))
            x = block(F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False))
        return self.head(x)
