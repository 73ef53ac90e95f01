"""Losses and schedules of MoCo, BYOL, SimSiam and DINO against hand values and explicit slow formulas."""
import math

import torch
import torch.nn.functional as F

from curate.losses import dino_loss, infonce, negative_cosine, normalized_mse, teacher_temperature, update_center
from curate.models.ema import cosine_momentum


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_infonce_hand_value():
    # q = k = e1; negatives e2 and -e1 give similarities 1, 0, -1; at T = 0.5 the logits are 2, 0, -2
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    expected = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    assert math.isclose(float(infonce(e1, 3 * e1, torch.cat([e2, -e1]), 0.5)), expected, rel_tol=1e-6)


def test_infonce_equals_explicit_formula():
    q, k, n = _randn(4, 6, seed=1), _randn(4, 6, seed=2), _randn(9, 6, seed=3)
    t = 0.2
    qn, kn, nn_ = (F.normalize(v, dim=1) for v in (q, k, n))
    total = 0.0
    for i in range(4):
        pos = math.exp(float(qn[i] @ kn[i]) / t)
        neg = sum(math.exp(float(qn[i] @ nn_[j]) / t) for j in range(9))
        total += -math.log(pos / (pos + neg))
    assert abs(float(infonce(q, k, n, t)) - total / 4) < 1e-4


def test_negative_cosine_hand_values_and_formula():
    diagonal, axis = torch.tensor([[1.0, 1.0]]), torch.tensor([[5.0, 0.0]])
    assert math.isclose(float(negative_cosine(diagonal, axis)), -1 / math.sqrt(2), rel_tol=1e-6)
    p, z = _randn(5, 7, seed=4), _randn(5, 7, seed=5)
    explicit = -sum(float(p[i] @ z[i]) / (float(p[i].norm()) * float(z[i].norm())) for i in range(5)) / 5
    assert abs(float(negative_cosine(p, z)) - explicit) < 1e-6


def test_normalized_mse_is_squared_distance_of_unit_vectors():
    diagonal, axis = torch.tensor([[1.0, 1.0]]), torch.tensor([[3.0, 0.0]])
    assert math.isclose(float(normalized_mse(diagonal, axis)), 2 - math.sqrt(2), rel_tol=1e-6)
    assert float(normalized_mse(axis, -axis)) == 4.0  # opposite directions: the maximum
    p, z = _randn(5, 7, seed=6), _randn(5, 7, seed=7)
    explicit = sum(float(((p[i] / p[i].norm() - z[i] / z[i].norm()) ** 2).sum()) for i in range(5)) / 5
    assert abs(float(normalized_mse(p, z)) - explicit) < 1e-5


def test_cosine_losses_send_gradients_to_both_sides_unless_detached():
    p, z = _randn(3, 4, seed=8).requires_grad_(), _randn(3, 4, seed=9).requires_grad_()
    normalized_mse(p, z.detach()).backward()
    assert p.grad is not None and z.grad is None


def test_dino_loss_uniform_outputs_give_log_k():
    k = 5
    loss = dino_loss(torch.zeros(4, 3, k), torch.zeros(2, 3, k), torch.zeros(k), 0.1, 0.04)
    assert math.isclose(float(loss), math.log(k), rel_tol=1e-6)


def test_dino_loss_equals_explicit_formula_and_skips_same_view_pairs():
    vs, vt, b, k = 4, 2, 3, 6
    s, t, c = _randn(vs, b, k, seed=10), _randn(vt, b, k, seed=11), _randn(k, seed=12)
    ts, tt = 0.1, 0.05
    total, pairs = 0.0, 0
    for i in range(vt):
        for j in range(vs):
            if i == j:  # the student is never asked to match the teacher on the very same view
                continue
            for n in range(b):
                target = [math.exp(float(t[i, n, m] - c[m]) / tt) for m in range(k)]
                logits = [float(s[j, n, m]) / ts for m in range(k)]
                log_z = math.log(sum(math.exp(v) for v in logits))
                total += -sum(target[m] / sum(target) * (logits[m] - log_z) for m in range(k))
            pairs += 1
    assert abs(float(dino_loss(s, t, c, ts, tt)) - total / (pairs * b)) < 1e-4


def test_dino_center_is_an_ema_of_batch_means():
    center = torch.tensor([1.0, 0.0, 0.0])
    teacher = torch.tensor([[[0.0, 2.0, 4.0]], [[2.0, 4.0, 6.0]]])  # (2 views, 1 image, 3): mean 1, 3, 5
    assert torch.allclose(update_center(center, teacher, 0.9), torch.tensor([0.9 + 0.1, 0.3, 0.5]))


def test_teacher_temperature_warms_up_linearly_then_stays():
    assert teacher_temperature(0.0) == 0.04
    assert math.isclose(teacher_temperature(0.15), 0.055)
    assert teacher_temperature(0.3) == 0.07 and teacher_temperature(1.0) == 0.07
    assert teacher_temperature(0.5, warmup=0.0) == 0.07


def test_cosine_momentum_rises_from_base_to_one():
    assert cosine_momentum(0.99, 0.0) == 0.99
    assert math.isclose(cosine_momentum(0.99, 0.5), 0.995)
    assert cosine_momentum(0.99, 1.0) == 1.0
    values = [cosine_momentum(0.99, p / 10) for p in range(11)]
    assert values == sorted(values)
