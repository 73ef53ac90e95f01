"""Losses against values computed by hand."""
import math

import torch

from curate.losses import nt_xent


def test_nt_xent_matches_hand_computation():
    # z1 = z2 = identity rows: each anchor's positive has sim 1, the two negatives 0.
    # loss = -log(e^{1/T} / (e^{1/T} + 2 e^0)) for every anchor
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert torch.isclose(nt_xent(torch.eye(2), torch.eye(2), t), torch.tensor(expected), atol=1e-6)


def test_nt_xent_general_case_equals_explicit_formula():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    t = 0.2
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    total = 0.0
    for i in range(10):
        pos = (i + 5) % 10
        denom = sum(math.exp(float(z[i] @ z[j]) / t) for j in range(10) if j != i)
        total += -math.log(math.exp(float(z[i] @ z[pos]) / t) / denom)
    assert abs(float(nt_xent(z1, z2, t)) - total / 10) < 1e-4


def test_nt_xent_is_scale_invariant_and_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(16, 32, generator=g)
    aligned = nt_xent(z, z + 0.01 * torch.randn(16, 32, generator=g))
    random = nt_xent(z, torch.randn(16, 32, generator=g))
    assert aligned < random
    assert torch.isclose(nt_xent(z, 3 * z), nt_xent(z, z), atol=1e-5)
