"""Weighted kNN against a hand-computed vote."""
import numpy as np

from curate.evaluate import weighted_knn


def test_weighted_knn_hand_example():
    train = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    y = np.array([0, 1, 1])
    q = np.array([[0.6, 0.8]], dtype=np.float32)
    # sims: 0.6 (class 0), 0.96 (class 1), 0.8 (class 1); k=1 -> class 1; k=3, T=1 -> class 1 too
    assert weighted_knn(train, y, q, np.array([1]), k=1) == 1.0
    assert weighted_knn(train, y, q, np.array([0]), k=3, temperature=1.0) == 0.0


def test_weighted_knn_temperature_matters():
    train = np.array([[1, 0], [0.9, 0.436], [0.9, -0.436]], dtype=np.float32)
    y = np.array([0, 1, 1])
    q = np.array([[1, 0]], dtype=np.float32)
    # sharp temperature: the exact match (class 0) dominates; flat: two class-1 votes win
    assert weighted_knn(train, y, q, np.array([0]), k=3, temperature=0.01) == 1.0
    assert weighted_knn(train, y, q, np.array([1]), k=3, temperature=100.0) == 1.0
