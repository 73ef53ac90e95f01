"""DINO's self-distillation loss, its centering and its teacher-temperature schedule (Caron et al., 2021).

The teacher's output, centred (minus a running mean) and sharpened (low temperature), is the
target distribution for the student's output on every *other* view. Centering keeps one
dimension from dominating; sharpening keeps the output from going uniform; together they avoid
collapse without negatives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dino_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
              student_temperature: float = 0.1, teacher_temperature: float = 0.04) -> torch.Tensor:
    """Cross-entropy H(teacher view i, student view j) averaged over all pairs with i != j (DINO, eq. 3).

    student: (Vs, B, K) logits for Vs views; the first Vt are the global views the teacher saw,
    in the same order. teacher: (Vt, B, K) logits. center: (K,). Returns a scalar.

    >>> s, t = torch.zeros(2, 1, 3), torch.zeros(2, 1, 3)  # uniform everywhere: H = log 3
    >>> dino_loss(s, t, torch.zeros(3))
    tensor(1.0986)
    """
    n_teacher, n_student = teacher.shape[0], student.shape[0]
    if n_student < 2 or n_teacher > n_student:
        raise ValueError(f"need >= 2 student views including the {n_teacher} teacher views, got {n_student}")
    targets = F.softmax((teacher.float() - center.float()) / teacher_temperature, dim=-1)  # (Vt, B, K)
    log_probs = F.log_softmax(student.float() / student_temperature, dim=-1)  # (Vs, B, K)
    cross = -torch.einsum("ibk,jbk->ijb", targets, log_probs)  # (Vt, Vs, B), no (Vt, Vs, B, K) tensor
    other_view = ~torch.eye(n_teacher, n_student, dtype=torch.bool, device=cross.device)
    return cross[other_view].mean()


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    """New center: momentum * center + (1 - momentum) * mean teacher logit (DINO, eq. 4).

    center: (K,); teacher: (..., K) logits of this batch (all views). Returns (K,), a new tensor.
    """
    batch_mean = teacher.float().reshape(-1, teacher.shape[-1]).mean(0)
    return center * momentum + batch_mean * (1 - momentum)


def teacher_temperature(progress: float, start: float = 0.04, end: float = 0.07, warmup: float = 0.3) -> float:
    """Teacher temperature: linear from `start` to `end` over the first `warmup` of training, then `end`.

    A sharp (cold) teacher early on stops the student from collapsing to uniform outputs before
    it has learnt anything (DINO, sec. 3.1 and appendix D).
    """
    if warmup <= 0 or progress >= warmup:
        return end
    return start + (end - start) * max(progress, 0.0) / warmup
