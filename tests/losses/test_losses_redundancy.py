"""Barlow Twins and VICReg losses against hand-computed values and explicit slow formulas."""
import math

import torch

from curate.losses import barlow_twins_loss, covariance_loss, invariance_loss, variance_loss, vicreg_loss

# 4 samples x 3 features: every column has mean 0 and (biased) variance 1, and the columns are
# pairwise uncorrelated (orthogonal +-1 columns of a Hadamard matrix)
DECORRELATED = torch.tensor([[1., 1., 1.], [1., -1., -1.], [-1., 1., -1.], [-1., -1., 1.]])


def _barlow_slow(z1, z2, lam, eps=1e-5):
    n, d = z1.shape
    def std(z, j):
        m = sum(float(z[i, j]) for i in range(n)) / n
        v = sum((float(z[i, j]) - m) ** 2 for i in range(n)) / n
        return [(float(z[i, j]) - m) / math.sqrt(v + eps) for i in range(n)]
    a, b = [std(z1, j) for j in range(d)], [std(z2, j) for j in range(d)]
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(a[i][k] * b[j][k] for k in range(n)) / n
            total += (1 - c) ** 2 if i == j else lam * c ** 2
    return total


def test_barlow_identical_decorrelated_embeddings_cost_nothing():
    assert float(barlow_twins_loss(DECORRELATED, DECORRELATED)) < 1e-8


def test_barlow_opposite_embeddings_cost_four_per_dimension():
    # C = -I: each diagonal term is (1 - (-1))^2 = 4, off-diagonal terms are 0
    assert torch.isclose(barlow_twins_loss(DECORRELATED, -DECORRELATED), torch.tensor(12.0), atol=1e-4)


def test_barlow_identical_correlated_columns_pay_the_off_diagonal_weight():
    # columns 0 and 1 identical: C = [[1, 1], [1, 1]], loss = 0 + lam * 2 * 1^2
    z = DECORRELATED[:, [0, 0]]
    assert torch.isclose(barlow_twins_loss(z, z, off_diagonal_weight=0.1), torch.tensor(0.2), atol=1e-4)


def test_barlow_matches_explicit_formula_and_ignores_per_dimension_scale():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    expected = _barlow_slow(z1, z2, lam=0.05)
    assert abs(float(barlow_twins_loss(z1, z2, 0.05)) - expected) < 1e-4
    scaled = z1 * torch.tensor([1., 3., 0.5, 10., 2.]) + 7  # standardisation undoes any affine map per column
    assert torch.isclose(barlow_twins_loss(scaled, z2, 0.05), barlow_twins_loss(z1, z2, 0.05), atol=1e-4)


def test_vicreg_terms_by_hand():
    z = 2 * DECORRELATED  # unbiased std = 2 * sqrt(4/3) > 1, uncorrelated
    assert float(vicreg_loss(z, z)) == 0.0
    assert torch.isclose(invariance_loss(z, z + 1), torch.tensor(1.0))  # every entry off by 1
    assert torch.isclose(vicreg_loss(z, z + 1), torch.tensor(25.0))  # a shift changes no variance or covariance
    collapsed = torch.ones(4, 3)  # std = sqrt(0 + 1e-4) = 0.01: hinge 0.99 in each dimension
    assert torch.isclose(variance_loss(collapsed, collapsed), torch.tensor(0.99))
    assert torch.isclose(variance_loss(collapsed, z), torch.tensor(0.495))  # the mean of both views
    # x = [1, 2, 3], y = 2x: cov = [[1, 2], [2, 4]]; off-diagonal 2^2 + 2^2 = 8, / D = 4, per view
    xy = torch.tensor([[1., 2.], [2., 4.], [3., 6.]])
    assert torch.isclose(covariance_loss(xy, xy), torch.tensor(8.0))


def _vicreg_slow(z1, z2, eps=1e-4):
    n, d = z1.shape
    inv = sum((float(z1[i, j]) - float(z2[i, j])) ** 2 for i in range(n) for j in range(d)) / (n * d)
    var = cov = 0.0
    for z in (z1, z2):
        mean = [sum(float(z[i, j]) for i in range(n)) / n for j in range(d)]
        c = [[sum((float(z[k, i]) - mean[i]) * (float(z[k, j]) - mean[j]) for k in range(n)) / (n - 1)
              for j in range(d)] for i in range(d)]
        var += sum(max(0.0, 1 - math.sqrt(c[j][j] + eps)) for j in range(d)) / d / 2
        cov += sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return 25 * inv + 25 * var + cov


def test_vicreg_matches_explicit_formula():
    g = torch.Generator().manual_seed(1)
    z1, z2 = 0.5 * torch.randn(7, 4, generator=g), 0.5 * torch.randn(7, 4, generator=g)
    assert abs(float(vicreg_loss(z1, z2)) - _vicreg_slow(z1, z2)) < 1e-4
    custom = 2 * invariance_loss(z1, z2) + 3 * variance_loss(z1, z2) + 4 * covariance_loss(z1, z2)
    assert torch.isclose(vicreg_loss(z1, z2, 2, 3, 4), custom)


def test_losses_accept_bf16_and_compute_in_fp32():
    z = DECORRELATED.to(torch.bfloat16)
    assert barlow_twins_loss(z, z).dtype == torch.float32
    assert vicreg_loss(z, z).dtype == torch.float32
