"""RoIAlign object embeddings (curate.embed.roi) on a real COCO photo."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.conftest import SHARED
from curate.embed.roi import embed_boxes_roi, roi_input
from curate.models import BackboneSpec, build_backbone, feature_dim
from curate.transforms import normalize, to_float
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD

PHOTO = SHARED / "coco128-detect" / "images" / "train2017" / "000000000009.jpg"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    if not PHOTO.exists():
        pytest.skip(f"needs ../shared/data/coco128-detect (absent at {PHOTO}); it is present in CI")
    with Image.open(PHOTO) as img:
        return img.convert("RGB")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone(BackboneSpec("resnet10", "imagenet")).eval()


def test_a_box_over_the_whole_image_is_the_image_pooled_feature(photo, model):
    pixels, boxes = roi_input(photo, np.array([[0, 0, photo.width, photo.height]]), short_side=128)
    assert min(pixels.shape[:2]) == 128 and np.allclose(boxes[0, 2:], pixels.shape[1::-1])
    vec = embed_boxes_roi(model, [pixels], [boxes], IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        x = normalize(to_float(torch.from_numpy(pixels)[None]), IMAGENET_MEAN, IMAGENET_STD)
        pooled = F.normalize(model(x).float(), dim=1).numpy()
    assert vec.shape == (1, feature_dim(model)) == pooled.shape
    assert float(vec[0] @ pooled[0]) > 0.99
    assert np.isclose(np.linalg.norm(vec[0]), 1.0, atol=1e-5)


def test_boxes_at_different_places_differ_and_keep_their_order(photo, model):
    w, h = photo.size
    quarters = np.array([[0, 0, w / 2, h / 2], [w / 2, h / 2, w, h], [0, h / 2, w / 2, h]])
    pixels, boxes = roi_input(photo, quarters, short_side=256)
    vecs = embed_boxes_roi(model, [pixels, pixels], [boxes, boxes[::-1]], IMAGENET_MEAN, IMAGENET_STD)
    assert vecs.shape == (6, feature_dim(model))
    sims = vecs[:3] @ vecs[:3].T
    assert sims[np.triu_indices(3, 1)].max() < 0.999
    assert np.allclose(vecs[3:], vecs[:3][::-1], atol=1e-5)  # boxes come back in the order given
