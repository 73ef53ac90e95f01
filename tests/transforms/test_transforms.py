"""Batched view generation: shapes, ranges, and that each operation does what it claims."""
import torch

from curate.transforms import ViewConfig, make_views, normalize, to_float
from curate.transforms.views import colour_jitter, random_blur, random_resized_crop


def _batch(b=8, s=32):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, generator=g)


def test_to_float_accepts_hwc_and_chw():
    x = _batch()
    a, b = to_float(x), to_float(x.permute(0, 3, 1, 2))
    assert a.shape == (8, 3, 32, 32) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1


def test_full_crop_without_flip_is_identity():
    x = to_float(_batch())
    out = random_resized_crop(x, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0)
    assert torch.allclose(out, x, atol=1e-5)


def test_flip_mirrors_horizontally():
    x = to_float(_batch())
    out = random_resized_crop(x, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0)
    assert torch.allclose(out, x.flip(3), atol=1e-5)


def test_views_differ_per_sample_and_stay_in_range():
    x = to_float(_batch(16))
    g = torch.Generator().manual_seed(3)
    v1, v2 = make_views(x, ViewConfig(size=24, blur=0.5), g), make_views(x, ViewConfig(size=24, blur=0.5), g)
    assert v1.shape == (16, 3, 24, 24)
    assert v1.min() >= 0 and v1.max() <= 1
    assert not torch.allclose(v1, v2)


def test_grayscale_always_gives_equal_channels():
    x = to_float(_batch())
    out = colour_jitter(x, ViewConfig(jitter=0.0, grayscale=1.0))
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)


def test_no_jitter_is_identity():
    x = to_float(_batch())
    assert torch.allclose(colour_jitter(x, ViewConfig(jitter=0.0, grayscale=0.0)), x, atol=1e-5)


def test_brightness_only_scales_pixels():
    x = to_float(_batch()) * 0.5  # stay below 1 so the clamp does not interfere
    cfg = ViewConfig(jitter=1.0, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0, grayscale=0.0)
    out = colour_jitter(x, cfg, torch.Generator().manual_seed(0))
    ratio = out / x.clamp(min=1e-3)
    per_sample = ratio.flatten(1)[:, :50]
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=2e-2)


def test_blur_preserves_mean_and_reduces_variance():
    x = to_float(_batch())
    out = random_blur(x, p=1.0, sigma=(1.5, 1.5))
    assert torch.allclose(out.mean((2, 3)), x.mean((2, 3)), atol=2e-2)
    assert out.var() < x.var()


def test_normalize_is_channels_last():
    x = normalize(to_float(_batch()))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_solarize_inverts_bright_pixels_only_and_is_off_by_default():
    from curate.transforms.views import random_solarize

    x = to_float(_batch())
    out = random_solarize(x, p=1.0)
    assert torch.equal(out, torch.where(x >= 0.5, 1 - x, x))
    assert torch.equal(random_solarize(x, p=0.0), x)
    assert ViewConfig().solarize == 0.0
    # solarisation comes last and draws after everything else: the rest of the view is unchanged
    plain = make_views(x, ViewConfig(), torch.Generator().manual_seed(5))
    solar = make_views(x, ViewConfig(solarize=1.0), torch.Generator().manual_seed(5))
    assert torch.equal(solar, torch.where(plain >= 0.5, 1 - plain, plain))
