"""Duplicates: exact by hash, near by embedding similarity, groups with keepers."""
import numpy as np

import curate
from curate.quality import exact_duplicates, groups_table


def test_exact_duplicates():
    assert exact_duplicates(["a", "b", "a", None, "c", "b", "a"]) == [[0, 2, 6], [1, 5]]


def test_near_duplicates_finds_planted_pairs_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 32)).astype(np.float32)
    x[10] = x[3] + 0.01 * rng.normal(size=32)
    x[11] = x[3] + 0.01 * rng.normal(size=32)
    x[200] = x[100] + 0.01 * rng.normal(size=32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert curate.near_duplicates(x, 0.99) == [[3, 10, 11], [100, 200]]


def test_groups_table_keeps_largest_and_does_not_repeat_exact_members():
    ids = np.array([10, 11, 12, 13, 14])
    pixels = np.array([100, 400, 100, 50, 60])
    table = groups_table([[0, 1]], [[0, 1, 2], [3, 4]], ids, pixels)
    exact = table[table.kind == "exact"]
    assert set(exact.id) == {10, 11} and exact.set_index("id").keeper[11]
    near = table[table.kind == "near"]
    assert set(near.id) == {13, 14} and near.set_index("id").keeper[14]  # 0,1 are exact already: group left with 1 member dropped
    assert table.group.nunique() == 2


def test_groups_do_not_chain_through_slightly_similar_images():
    # a chain 0-1-2-...-9 where each neighbour pair is above the threshold but the ends are far apart
    angles = np.linspace(0, 0.9, 10)
    x = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    groups = curate.near_duplicates(x, threshold=float(np.cos(0.11)))
    assert all(len(g) <= 3 for g in groups) and sum(len(g) for g in groups) >= 6


def test_calibrated_threshold_sits_above_typical_neighbours_and_finds_planted_copies():
    from curate.quality import calibrated_threshold

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 64)).astype(np.float32)
    x[:20] = x[20:40] + 0.02 * rng.normal(size=(20, 64))  # 20 planted near copies
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t = calibrated_threshold(x)
    assert 0.9 <= t <= 0.995
    groups = curate.near_duplicates(x, t)
    assert sorted(tuple(g) for g in groups) == [(i, i + 20) for i in range(20)]
