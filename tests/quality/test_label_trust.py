"""Planted label flips: the estimated precision of label-issue flags, checked by hand on small arrays
and end to end on synthetic embeddings (separable clusters: high precision, the flags right; random
vectors: too weak, nothing flagged), and the same seed giving the same answer."""
from __future__ import annotations

import numpy as np
import pytest

from curate.quality.label_issues import class_probabilities
from curate.quality.label_trust import auroc, choose_threshold, estimate, plant_flips, precision_curve


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def knn_probs(x, n_classes):
    return lambda labels: class_probabilities(x, labels, n_classes, "knn", k=10)


def test_plant_flips_moves_the_share_asked_to_confused_classes():
    labels = np.repeat(np.arange(3), 200)
    probs = np.full((600, 3), 0.05)
    probs[np.arange(600), labels] = 0.9
    probs[:150] = [0.1, 0.85, 0.05]  # three quarters of class 0 look like 1: 0's flips go mostly to 1
    flipped, rows = plant_flips(labels, probs, 0.1, np.random.default_rng(0))
    assert len(rows) == 60 and np.array_equal(np.flatnonzero(flipped != labels), rows)
    zeros = rows[labels[rows] == 0]
    assert np.mean(flipped[zeros] == 1) > 0.8  # 151 of 152 counts (one each added) point to class 1


def test_precision_curve_and_threshold_by_hand():
    # planted scores .1 .2 .3 .4; unflipped: 1 of 10 at <= .2, 5 of 10 at <= .4. With noise .1:
    # t=.1: W .25, U 0 -> 1; t=.2: W .5, U .1 -> .05 / .1 = .5; t=.4: W 1, U .5 -> .2
    t, precision, recall = precision_curve([.4, .1, .3, .2], [.15, .35, .35, .4, .4, .5, .6, .7, .8, .9], 0.1)
    assert t.tolist() == [.1, .2, .3, .4] and recall.tolist() == [.25, .5, .75, 1]
    assert precision[0] == 1 and precision[1] == pytest.approx(.5) and precision[3] == pytest.approx(.2)
    assert choose_threshold(np.array([1, .9, .85, .5, .9]), 0.8, min_planted=1) == 2  # every lower one also >= .8
    assert choose_threshold(np.array([.5, .9, .95]), 0.8, min_planted=2) == 2  # the first needs 2 flips under it
    assert choose_threshold(np.array([.9, .7]), 0.8, min_planted=2) == -1
    assert auroc([.5, .6], [.1, .5]) == pytest.approx((3 + 0.5) / 4) and auroc([], [.1]) == 0.5


def separable(n=900, classes=3, wrong=27, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, n)
    x = unit(rng.normal(size=(classes, 16))[truth] * 3 + rng.normal(size=(n, 16)))
    labels = truth.copy()
    bad = rng.choice(n, wrong, replace=False)
    labels[bad] = (truth[bad] + rng.integers(1, classes, wrong)) % classes
    return x, labels, labels != truth


def test_separable_clusters_flag_the_wrong_labels_at_a_high_estimated_precision():
    x, labels, wrong = separable()
    fn = knn_probs(x, 3)
    flags, info = estimate(labels, fn(labels), fn, seed=0)
    assert not info["too_weak"] and info["expected_precision"] >= 0.8
    assert wrong[flags].mean() >= 0.9 and flags[wrong].mean() >= 0.8, (wrong[flags].mean(), flags[wrong].mean())
    assert info["planted"] == 45 and info["planted_recall"] > 0.5 and info["planted_auroc"] > 0.95
    assert info["noise_rate"] == pytest.approx(0.03, abs=0.01) and info["agreement"] > 0.9


def test_random_vectors_are_too_weak_and_flag_nothing():
    rng = np.random.default_rng(1)
    x = unit(rng.normal(size=(600, 16)))
    labels = rng.integers(0, 4, 600)
    fn = knn_probs(x, 4)
    flags, info = estimate(labels, fn(labels), fn, seed=0)
    assert info["too_weak"] and not flags.any() and info["expected_precision"] is None
    assert info["agreement"] < info["agreement_min"] and 0.4 < info["planted_auroc"] < 0.7
    # the same probabilities with the agreement gate off: still no cut reaches the target
    flags, info = estimate(labels, fn(labels), fn, seed=0, agreement_min=0)
    assert info["too_weak"] and not flags.any() and info["best_precision"] < 0.8


def test_the_same_seed_gives_the_same_answer():
    x, labels, _ = separable(seed=3)
    fn = knn_probs(x, 3)
    probs = fn(labels)
    a, info_a = estimate(labels, probs, fn, seed=5)
    b, info_b = estimate(labels, probs, fn, seed=5)
    assert np.array_equal(a, b) and info_a == info_b and info_a["seed"] == 5
    assert not np.array_equal(plant_flips(labels, probs, rng=np.random.default_rng(5))[1],
                              plant_flips(labels, probs, rng=np.random.default_rng(6))[1])
