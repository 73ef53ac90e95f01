"""Selection strategies: rankings, the k-center 2-approximation bound, the facade."""
import itertools

import numpy as np
import pytest

import curate
from curate.select import STRATEGIES
from curate.select.kcenter import coverage_radius


def _points(n=300, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_returns_a_prefix_ranking(name):
    x = _points()
    full = curate.select(x, 50, name, seed=3)
    assert len(full) == 50 and len(set(full.tolist())) == 50 and full.min() >= 0 and full.max() < len(x)
    if not getattr(STRATEGIES.get(name), "budget_dependent", False):  # e.g. typiclust: n clusters for n picks
        assert np.array_equal(curate.select(x, 20, name, seed=3), full[:20])  # any budget is a prefix


def test_kcenter_is_within_twice_the_optimal_radius():
    x = _points(24, 2, seed=5)
    k = 3
    greedy = coverage_radius(x, curate.select(x, k, "kcenter"))
    optimal = min(coverage_radius(x, np.array(c)) for c in itertools.combinations(range(len(x)), k))
    assert optimal <= greedy <= 2 * optimal + 1e-6


def test_kcenter_covers_better_than_random():
    x = _points(2000, 16)
    kc = coverage_radius(x, curate.select(x, 100, "kcenter"))
    rnd = np.mean([coverage_radius(x, curate.select(x, 100, "random", seed=s)) for s in range(3)])
    assert kc < rnd


def test_unknown_strategy_lists_choices():
    with pytest.raises(ValueError, match="kcenter"):
        curate.select(_points(), 5, "nope")


def test_facade_survives_importing_the_subpackage():
    import importlib

    importlib.import_module("curate.select.kcenter")
    assert callable(curate.select) and len(curate.select(_points(), 3)) == 3


def test_auto_ranks_with_typiclust_for_small_budgets_and_facility_location_beyond():
    from curate.select.auto import TYPICLUST_MAX, resolve_strategy

    x = _points(3000, 16)
    small, large = 40, TYPICLUST_MAX + 100
    assert np.array_equal(curate.select(x, small, "auto", seed=2), curate.select(x, small, "typiclust", seed=2))
    assert np.array_equal(curate.select(x, large, "auto", seed=2), curate.select(x, large, "facility_location", seed=2))
    assert resolve_strategy("auto", TYPICLUST_MAX) == "typiclust"
    assert resolve_strategy("auto", TYPICLUST_MAX + 1) == "facility_location"
    assert resolve_strategy("kcenter", 10) == "kcenter"  # only auto is resolved


def test_cluster_rows_clusters_the_listed_rows_and_marks_the_others():
    from curate.steps.select import cluster_rows, kmeans_clusters

    x, rows = _points(200), np.arange(1, 200, 3)
    out = cluster_rows(x, rows, k=5, seed=1)
    assert out.dtype == np.int64 and (np.delete(out, rows) == -1).all()
    assert np.array_equal(out[rows], kmeans_clusters(x[rows], 5, seed=1)) and set(out[rows]) == set(range(5))


def test_saved_selections_lists_each_selection_with_its_figures(tmp_path):
    from curate.steps.select import save_selection, saved_selections
    from curate.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws", tmp_path)
    save_selection(ws, "wide", [3, 1, 2], "kcenter", {}, 0, metrics={"coverage_radius": 0.25})
    save_selection(ws, "bare", [0], "random", {}, 0)
    (ws.selections_dir / "bare.json").unlink()  # a selection whose JSON is gone still shows up
    table = saved_selections(ws)
    assert table.columns.tolist() == ["name", "strategy", "n", "coverage radius", "created"]
    assert table["name"].tolist() == ["bare", "wide"] and table.iloc[0, 1:].isna().all()
    wide = table.iloc[1]
    assert (wide["strategy"], wide["n"], wide["coverage radius"]) == ("kcenter", 3, 0.25) and wide["created"]
