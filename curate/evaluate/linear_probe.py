"""Linear probe: logistic regression on frozen features, the SSL literature's headline figure.

Protocol (as in SimCLR/DINO, full-batch instead of SGD): features are L2-normalised, then
standardised with the fitting set's statistics; a softmax regression is fitted full-batch with
L-BFGS. The problem is convex, so the optimum does not depend on a learning rate or epochs, which
keeps the figure comparable across runs. The weight decay is picked from a small sweep on held-back
training data (a validation slice, or k folds when the training set is small), then the probe is
refitted on the whole training split and scored top-1 on the test split.

Works from a handful of labels (selection lift: n = 10..1000) to 50k x 512 (seconds on 2 cores).

Example:
    >>> result = linear_probe(train_x, train_y, test_x, test_y)
    >>> result.top1, result.weight_decay
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

WEIGHT_DECAYS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)  # strongest first: each fit warm-starts the next
SMALL_TRAIN = 1000  # below this many training examples the sweep uses k folds, not one slice


@dataclass
class LogisticModel:
    """Standardisation + linear map: logits = ((x - mean) / std) @ weight + bias."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    weight: torch.Tensor  # (D, C)
    bias: torch.Tensor  # (C,)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) L2-normalised features -> (N, C) logits."""
        return ((x - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return self.logits(x).argmax(1).numpy()


@dataclass
class ProbeResult:
    top1: float  # accuracy on the test split, in [0, 1]
    weight_decay: float  # the one the sweep chose
    val_top1: dict[float, float] = field(default_factory=dict)  # mean validation accuracy per weight decay


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, weight_decay: float, max_iter: int = 100,
                 init: LogisticModel | None = None) -> LogisticModel:
    """Minimise mean cross-entropy + weight_decay / 2 * |W|^2 with L-BFGS.

    x: (N, D) float32, y: (N,) int64 in [0, n_classes); `init` warm-starts from another fit.
    """
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)  # constant features (or N = 1) stay finite
    z = (x - mean) / std
    zt = z.T.contiguous()  # the gradient reads z column-wise: a transposed copy makes it a fast matmul
    onehot = F.one_hot(y, n_classes).float()
    weight = (init.weight if init is not None else torch.zeros(x.shape[1], n_classes)).clone()
    bias = (init.bias if init is not None else torch.zeros(n_classes)).clone()
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-5, tolerance_change=1e-7)

    @torch.no_grad()
    def closure() -> torch.Tensor:
        # hand-written gradient: autograd would add a slow strided (D, N) @ (N, C) product
        logp = torch.log_softmax(torch.addmm(bias, z, weight), dim=1)
        loss = -(logp * onehot).sum() / len(z) + 0.5 * weight_decay * weight.pow(2).sum()
        g = (logp.exp() - onehot) / len(z)
        torch.addmm(weight, zt, g, beta=weight_decay, out=weight.grad)
        torch.sum(g, 0, out=bias.grad)
        return loss

    opt.step(closure)
    return LogisticModel(mean, std, weight, bias)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 weight_decays: tuple[float, ...] = WEIGHT_DECAYS, val_fraction: float = 0.2, max_iter: int = 100,
                 seed: int = 0) -> ProbeResult:
    """Top-1 test accuracy of a logistic-regression probe on frozen features.

    train_x (N, D), test_x (M, D): features (L2-normalised here); train_y (N,), test_y (M,): integer
    labels (any values; classes absent from training are simply never predicted).
    """
    classes = np.unique(np.concatenate([np.asarray(train_y), np.asarray(test_y)]))
    ytr = torch.from_numpy(np.searchsorted(classes, train_y).astype(np.int64))
    yte = np.searchsorted(classes, test_y)
    xtr, xte = _normalised(train_x), _normalised(test_x)
    val_top1, fitted = _sweep(xtr, ytr, len(classes), weight_decays, val_fraction, max_iter, seed)
    # best validation accuracy; ties (common with tiny sets) go to the stronger weight decay
    best = max(weight_decays, key=lambda wd: (round(val_top1[wd], 9), wd))
    model = fit_logistic(xtr, ytr, len(classes), best, max_iter, init=fitted.get(best))
    return ProbeResult(float((model.predict(xte) == yte).mean()), best, val_top1)


def _normalised(x: np.ndarray) -> torch.Tensor:
    return F.normalize(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), dim=1)


def _sweep(x: torch.Tensor, y: torch.Tensor, n_classes: int, weight_decays, val_fraction: float, max_iter: int,
           seed: int) -> tuple[dict[float, float], dict[float, LogisticModel]]:
    """Mean validation accuracy per weight decay, over one slice (large N) or k folds (small N),
    and the last fold's model per weight decay (a warm start for the final fit)."""
    n = len(x)
    if n < 2 or len(weight_decays) == 1:  # nothing to hold back: the sweep cannot tell them apart
        return {wd: 0.0 for wd in weight_decays}, {}
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    n_folds = min(5, n) if n < SMALL_TRAIN else 1
    scores, fitted = {wd: [] for wd in weight_decays}, {}
    for fold in range(n_folds):
        if n_folds == 1:
            val = perm[: max(1, int(round(n * val_fraction)))]
        else:
            val = perm[fold::n_folds]
        keep = torch.ones(n, dtype=torch.bool)
        keep[val] = False
        model = None
        for wd in sorted(weight_decays, reverse=True):
            model = fitted[wd] = fit_logistic(x[keep], y[keep], n_classes, wd, max_iter, init=model)
            scores[wd].append(float((model.predict(x[val]) == y[val].numpy()).mean()))
    return {wd: float(np.mean(s)) for wd, s in scores.items()}, fitted
