"""Weighted kNN classification on frozen features (Wu et al., 2018; the DINO/SimCLR protocol)."""
from __future__ import annotations

import numpy as np
import torch


def weighted_knn(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> float:
    """Top-1 accuracy of cosine kNN with votes weighted by exp(sim / T).

    train_x (N, D), test_x (M, D): L2-normalised features; train_y, test_y: integer labels.
    """
    train = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
    labels = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    n_classes = int(max(labels.max(), np.max(test_y))) + 1
    k = min(k, len(train))
    correct = 0
    for start in range(0, len(test_x), chunk):
        q = torch.from_numpy(np.ascontiguousarray(test_x[start:start + chunk], dtype=np.float32))
        sims, idx = (q @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(q), n_classes).scatter_add_(1, labels[idx], (sims / temperature).exp())
        correct += int((votes.argmax(1).numpy() == np.asarray(test_y[start:start + chunk])).sum())
    return correct / len(test_x)
