"""Object embeddings by RoIAlign: one pass of the backbone over the parent image, then each box pooled
from its last feature map (Fast R-CNN's RoI pooling, He et al. 2017's RoIAlign), instead of one pass
per object over its crop (`curate.data.sources.crop_with_context`, what `curate embed` does).

The parent is resized so that its shorter side is `short_side` px (the encoder's image size times a
factor: a box must span a few cells of the map, and the map is 1/8 to 1/32 of the input), run through
the ResNet's stages up to layer4 (`curate.models.feature_map`), and each box is pooled by
`torchvision.ops.roi_align` to an `output_size` grid, then averaged over it as the encoder's own
global average pool does, so the vector has the encoder's dimension and lives where its image vectors
do. ResNets only: a ViT's class token has no map to pool.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import roi_align

from curate.models.feature_map import backbone_feature_map
from curate.transforms import normalize, to_float


def roi_input(img: Image.Image, boxes: np.ndarray, short_side: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 of `img` resized so its shorter side is `short_side` px (aspect kept), and
    `boxes` ((K, 4) x0, y0, x1, y1 in `img`'s pixels) in the resized image's pixels."""
    scale = short_side / min(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    resized = np.array(img.convert("RGB").resize((w, h), Image.BILINEAR))
    factors = np.array([w / img.width, h / img.height, w / img.width, h / img.height])
    return resized, np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * factors


@torch.no_grad()
def embed_boxes_roi(model: torch.nn.Module, images_uint8: list[np.ndarray], boxes_per_image: list[np.ndarray],
                    mean, std, output_size: int = 4, sampling_ratio: int = 2) -> np.ndarray:
    """Embed the boxes of each image by RoIAlign over the backbone's layer4 map.

    images_uint8: per parent an (H, W, 3) uint8 array (any size; `roi_input` makes one);
    boxes_per_image: per parent a (K_i, 4) array of x0, y0, x1, y1 in that array's pixels;
    mean, std: the encoder's normalisation (config.json's `normalization`).
    Returns (sum K_i, D) float32, L2-normalised, the boxes in the order given; D = the encoder's
    feature_dim. A box covering the whole image gives (up to RoIAlign's sampling) the image's own
    pooled feature at that input size.
    """
    device = next(model.parameters()).device
    out = []
    for img, boxes in zip(images_uint8, boxes_per_image):
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if not len(boxes):
            continue
        pixels = torch.from_numpy(np.require(img, np.uint8, ["C", "W"]))[None].to(device)
        x = normalize(to_float(pixels), mean, std)
        fmap = backbone_feature_map(model, x).float()  # (1, C, h, w)
        scale = fmap.shape[-1] / x.shape[-1]  # 1 / the map's stride (the stem's: 8, 16 or 32)
        rois = torch.cat([torch.zeros(len(boxes), 1), torch.from_numpy(boxes)], dim=1).to(device)
        pooled = roi_align(fmap, rois, output_size, spatial_scale=scale, sampling_ratio=sampling_ratio,
                           aligned=True)  # (K, C, output_size, output_size)
        out.append(F.normalize(pooled.mean(dim=(2, 3)), dim=1).cpu().numpy())
    if not out:
        raise ValueError("no boxes to embed")
    return np.concatenate(out).astype(np.float32)
