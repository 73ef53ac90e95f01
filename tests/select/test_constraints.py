"""Constraints on any strategy (curate.select.constraints) and the select step that applies them."""
from __future__ import annotations

import numpy as np
import pytest

from curate.select.constraints import Constraints, constrained_select, group_quotas


def blobs(sizes, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim)) * 3
    x = np.concatenate([c + rng.standard_normal((s, dim)) for c, s in zip(centres, sizes)]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("strategy", ["random", "kcenter"])
def test_include_comes_first_and_exclude_never_appears(strategy):
    x, _ = blobs([50, 50, 50])
    include, exclude = np.array([7, 3, 7]), np.arange(100, 150)
    order = constrained_select(x, 20, strategy, constraints=Constraints(include=include, exclude=exclude))
    assert list(order[:2]) == [7, 3] and len(order) == 20 and len(set(order)) == 20
    assert not np.isin(order, exclude).any()


def test_pool_mask_limits_the_choice():
    x, keys = blobs([40, 40])
    order = constrained_select(x, 30, "kcenter", constraints=Constraints(pool=keys == 1))
    assert (keys[order] == 1).all() and len(order) == 30


def test_balance_gives_every_group_an_equal_share_and_balanced_prefixes():
    x, keys = blobs([300, 30, 8])
    order = constrained_select(x, 60, "kcenter", constraints=Constraints(balance=keys))
    counts = np.bincount(keys[order], minlength=3)
    assert list(counts) == [26, 26, 8]  # the 8-image group gives up what it lacks, shared equally
    first = np.bincount(keys[order[:12]], minlength=3)
    assert first.min() >= 3, "a prefix of a balanced ranking stays balanced"


def test_balance_counts_must_includes_in_their_group():
    x, keys = blobs([50, 50])
    order = constrained_select(x, 20, "random", constraints=Constraints(balance=keys, include=np.arange(6)))
    assert list(np.bincount(keys[order])) == [10, 10]


def test_quotas_water_fill():
    assert group_quotas({"a": 100, "b": 2, "c": 100}, {}, 10) == {"a": 4, "b": 2, "c": 4}
    assert group_quotas({"a": 100, "b": 100}, {"a": 4}, 6) == {"a": 1, "b": 5}
    assert sum(group_quotas({"a": 3, "b": 3}, {}, 50).values()) == 6


def test_dedup_skips_near_copies_of_chosen_images():
    x, _ = blobs([60])
    rng = np.random.default_rng(1)
    copies = x + 0.01 * rng.standard_normal(x.shape).astype(np.float32)
    both = np.concatenate([x, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    plain = constrained_select(both, 60, "random", seed=3)
    deduped = constrained_select(both, 60, "random", seed=3, constraints=Constraints(dedup=0.99))
    pair = lambda order: len(order) - len(set(np.asarray(order) % 60))  # noqa: E731
    assert pair(plain) > 5 and pair(deduped) == 0 and len(deduped) == 60
    kept_with_include = constrained_select(both, 10, "random", constraints=Constraints(dedup=0.99, include=[5]))
    assert 65 not in kept_with_include


def test_select_step_records_request_and_metrics(built_workspace_copy):
    from curate.data.tags import add_tag
    from curate.select.filters import Filters
    from curate.steps.select import SelectionRequest, run_selection

    ws = built_workspace_copy
    manifest = ws.manifest()
    bad = manifest["id"].iloc[:20].to_numpy()
    add_tag(ws, bad, "bad")
    req = SelectionRequest(n=0.05, strategy="kcenter", balance="label", dedup="auto",
                           exclude=["tag:bad"], filters=Filters(labels=["cat", "dog", "ship"]))
    table = run_selection(ws, req.n, name="cats_dogs", request=req)
    chosen = manifest.set_index("id").loc[table["id"]]
    assert set(chosen["label"]) == {"cat", "dog", "ship"} and not np.isin(table["id"], bad).any()
    counts = chosen["label"].value_counts()
    assert counts.max() - counts.min() <= 1
    pool = int(manifest["label"].isin(["cat", "dog", "ship"]).sum()) - int(
        manifest.loc[bad, "label"].isin(["cat", "dog", "ship"]).sum())
    assert len(table) == round(0.05 * pool)
    meta = ws.selection_meta("cats_dogs")
    assert meta["request"]["balance"] == "label" and meta["request"]["exclude"] == ["tag:bad"]
    assert 0.9 <= meta["request"]["dedup_threshold"] <= 0.995
    m = meta["metrics"]
    assert m["coverage_radius"] >= m["mean_distance_to_selected"] > 0
    assert sum(m["label_histogram"]["selected"].values()) == len(table)
    assert sum(m["cluster_histogram"]["pool"].values()) == m["pool"] == pool
