"""Every registered selection strategy: the ranking contract, plus a behaviour check per strategy
(against brute force or random), the k-center 2-approximation bound, the facade and auto's rule, and
the per-image scores they build on."""
import inspect
import itertools

import numpy as np
import pytest
import torch

import curate
from curate.quality.scores import image_scores, knn, outliers
from curate.select import STRATEGIES
from curate.select.facility_location import facility_location_greedy, objective, similarity_graph
from curate.select.kcenter import coverage_radius, kcenter_greedy
from curate.select.probcover import ball_coverage, choose_delta, purity_delta



def blobs(sizes, dim=16, spread=0.15, seed=0):
    """L2-normalised Gaussian blobs around random unit centres, and each row's blob."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + spread * rng.standard_normal((s, dim)) / np.sqrt(dim) for c, s in zip(centres, sizes)])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


def takes_include(name):
    return "include" in inspect.signature(STRATEGIES.get(name)).parameters


def _points(n=300, d=8, seed=0):
    """Raw Gaussian points (not normalised)."""
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def pool():
    return blobs([120, 80, 50, 30, 20], spread=0.6, seed=1)[0]


@pytest.mark.parametrize("points", ["blobs", "raw"])
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_ranking_contract(name, points, pool):
    """Every strategy, on normalised blobs and on raw (unnormalised) Gaussian points."""
    pool = pool if points == "blobs" else _points()
    full = curate.select(pool, 40, name, seed=3)
    assert full.dtype == np.int64 and len(full) == 40 and len(set(full.tolist())) == 40
    assert full.min() >= 0 and full.max() < len(pool)
    assert np.array_equal(curate.select(pool, 40, name, seed=3), full), "same seed, same ranking"
    budget_dependent = getattr(STRATEGIES.get(name), "budget_dependent", False)  # typiclust
    fixed = {"clusters": 8} if budget_dependent else {}
    assert np.array_equal(curate.select(pool, 15, name, seed=3, **fixed),
                          curate.select(pool, 40, name, seed=3, **fixed)[:15]), "any budget is a prefix"
    assert len(curate.select(pool, 10_000, name)) == len(pool)


@pytest.mark.parametrize("name", [n for n in STRATEGIES.names() if takes_include(n)])
def test_include_rows_are_planned_around_and_never_returned(name, pool):
    include = np.array([0, 5, 130, 250])
    order = curate.select(pool, 30, name, include=include)
    assert len(order) == 30 and not np.isin(order, include).any()
    assert len(curate.select(pool, 10_000, name, include=include)) == len(pool) - len(include)


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


def brute_kcenter(x, n, include=()):
    """The plain greedy: one full pass per pick."""
    xt = torch.from_numpy(x)
    sq = (xt * xt).sum(1)
    min_d2 = torch.full((len(x),), float("inf"))
    for c in include:
        torch.minimum(min_d2, (sq - 2 * (xt @ xt[c]) + sq[c]).clamp_(min=0), out=min_d2)
        min_d2[c] = -1.0
    nxt = int(min_d2.argmax()) if len(include) else int(((xt - xt.mean(0)) ** 2).sum(1).argmin())
    chosen = []
    for _ in range(n):
        chosen.append(nxt)
        torch.minimum(min_d2, (sq - 2 * (xt @ xt[nxt]) + sq[nxt]).clamp_(min=0), out=min_d2)
        min_d2[nxt] = -1.0
        nxt = int(min_d2.argmax())
    return np.array(chosen)


def assert_greedy_order(x, order, include=()):
    """Each pick is (within float32 rounding) the farthest point from everything before it, in
    float64; where two points tie, the accelerated and plain orders may part, both correct."""
    x = x.astype(np.float64)
    min_d = np.full(len(x), np.inf)
    for c in include:
        min_d = np.minimum(min_d, np.linalg.norm(x - x[c], axis=1))
    if not len(include):
        assert order[0] == brute_kcenter(x.astype(np.float32), 1)[0]
        min_d = np.linalg.norm(x - x[order[0]], axis=1)
        order = order[1:]
    for i, c in enumerate(order):
        assert min_d[c] >= min_d.max() - 1e-5, f"pick {i} is not the farthest point"
        min_d = np.minimum(min_d, np.linalg.norm(x - x[c], axis=1))


@pytest.mark.parametrize("n_rows,dim,n,candidates", [(2000, 8, 300, 16), (3000, 2, 500, 8), (1500, 32, 400, 1024)])
def test_accelerated_kcenter_equals_plain_greedy(n_rows, dim, n, candidates):
    x = np.random.default_rng(n_rows).normal(size=(n_rows, dim)).astype(np.float32)
    fast, plain = kcenter_greedy(x, n, candidates=candidates), brute_kcenter(x, n)
    assert np.mean(fast == plain) > 0.5  # identical until the first float32 tie, if any
    assert_greedy_order(x, fast)


def test_accelerated_kcenter_is_identical_without_ties():
    x = np.random.default_rng(0).normal(size=(2000, 8)).astype(np.float32)
    assert np.array_equal(kcenter_greedy(x, 300, candidates=16), brute_kcenter(x, 300))


def test_kcenter_with_include_equals_plain_greedy():
    x = np.random.default_rng(7).normal(size=(1000, 8)).astype(np.float32)
    include = [3, 500, 999]
    fast = kcenter_greedy(x, 100, include=include, candidates=8)
    assert np.array_equal(fast, brute_kcenter(x, 100, include))
    assert_greedy_order(x, fast, include)


def test_coverage_radius_matches_cdist():
    x = np.random.default_rng(2).normal(size=(500, 8)).astype(np.float32)
    centres = np.arange(0, 500, 7)
    expected = torch.cdist(torch.from_numpy(x), torch.from_numpy(x[centres])).min(1).values.max()
    assert coverage_radius(x, centres) == pytest.approx(float(expected), rel=1e-5)


def test_coverage_radius_bounded_search_is_exact(monkeypatch):
    from curate.select import kcenter

    x, _ = blobs([2000, 1000, 500], spread=1.0)
    for centres in (np.arange(0, 3500, 11), kcenter_greedy(x, 200)):
        exact = coverage_radius(x, centres)
        monkeypatch.setattr(kcenter, "EXACT_PAIRS", 0)
        assert coverage_radius(x, centres) == pytest.approx(exact, rel=1e-5)
        monkeypatch.undo()


def test_facility_location_beats_random_with_diminishing_gains(pool):
    order, gains = facility_location_greedy(pool, 30)
    assert np.all(np.diff(gains) <= 1e-9), "greedy gains of a submodular function never grow"
    graph = similarity_graph(*knn(pool, 10))
    assert objective(*graph, order) == pytest.approx(gains.sum(), rel=1e-5)
    random = [objective(*graph, curate.select(pool, 30, "random", seed=s)) for s in range(5)]
    assert objective(*graph, order) > max(random)


def test_facility_location_include_counts_as_served(pool):
    include = curate.select(pool, 10, "facility_location")
    order, gains = facility_location_greedy(pool, 20, include=include)
    assert np.array_equal(order, curate.select(pool, 30, "facility_location")[10:])


def test_typiclust_takes_one_typical_image_per_cluster_first():
    x, blob = blobs([200, 120, 60, 40, 30, 25, 20, 15], dim=32, spread=0.1)
    order = curate.select(x, 8, "typiclust")
    assert sorted(blob[order]) == list(range(8)), "one image from every cluster"
    assert list(blob[order]) == list(range(8)), "largest cluster first"


def test_typiclust_include_covers_its_cluster():
    x, blob = blobs([200, 120, 60, 40], dim=32, spread=0.1)
    order = curate.select(x, 3, "typiclust", include=[0])  # a row of the largest blob
    assert sorted(blob[order]) == [1, 2, 3]


def test_probcover_covers_more_than_random(pool):
    sims, ids = knn(pool, 32)
    delta = choose_delta(pool, sims, ids)
    assert 0 < delta < 2
    ours = ball_coverage(pool, curate.select(pool, 20, "probcover"), delta)
    random = [ball_coverage(pool, curate.select(pool, 20, "random", seed=s), delta) for s in range(5)]
    assert ours > max(random)


def test_probcover_delta_is_at_least_the_typical_20th_neighbour_distance(pool):
    sims, ids = knn(pool, 32)
    floor = float(np.median(1.0 - sims[:, 19]))
    assert choose_delta(pool, sims, ids) >= floor - 1e-6
    assert choose_delta(pool, sims, ids, min_ball=0) == purity_delta(pool, sims, ids)


def test_probcover_keeps_going_after_full_coverage():
    x, _ = blobs([40, 40], spread=0.2)
    order = curate.select(x, 60, "probcover", delta=1.0)  # two balls cover everything
    assert len(set(order.tolist())) == 60


@pytest.mark.parametrize("order", ["random", "nearest"])
def test_cluster_balanced_gives_unequal_blobs_equal_shares(order):
    x, blob = blobs([400, 100, 50, 30, 20], dim=32, spread=0.1)
    picks = curate.select(x, 50, "cluster_balanced", clusters=5, order=order)
    assert list(np.bincount(blob[picks])) == [10] * 5
    assert sorted(np.bincount(blob[picks[:5]])) == [1] * 5, "every prefix is balanced"
    more = curate.select(x, 100, "cluster_balanced", clusters=5, order=order)
    assert list(np.bincount(blob[more])) == [20, 20, 20, 20, 20]


def test_uniqueness_favours_isolated_images():
    x, _ = blobs([500], spread=0.3)
    loners = np.random.default_rng(3).standard_normal((50, 16)).astype(np.float32)
    x = np.concatenate([x, loners / np.linalg.norm(loners, axis=1, keepdims=True)])
    share = np.mean([np.mean(curate.select(x, 50, "uniqueness", seed=s) >= 500) for s in range(5)])
    uniform = np.mean([np.mean(curate.select(x, 50, "uniqueness", seed=s, power=0) >= 500) for s in range(5)])
    assert share > 0.5 and uniform < 0.25  # base rate 50 / 550 = 9%


def test_knn_is_exact_below_the_threshold_and_close_above():
    x, _ = blobs([300, 300, 300], spread=1.0)
    sims, ids = knn(x, 5)
    full = x @ x.T
    np.fill_diagonal(full, -np.inf)
    assert np.array_equal(np.sort(ids, 1), np.sort(np.argsort(-full, 1)[:, :5], 1))
    assert np.allclose(sims, -np.sort(-full, 1)[:, :5], atol=1e-5)
    part_ids = knn(x, 5, exact=False)[1]
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(part_ids, ids)])
    assert recall > 0.8


def test_image_scores_flag_planted_outliers_and_duplicates():
    x, _ = blobs([300], spread=0.3)
    far = -x[:3]  # antipodal: far from everything
    x = np.concatenate([x, x[10:11], far])  # row 300 duplicates row 10
    scores = image_scores(x, k=1)
    assert list(scores.columns) == ["uniqueness", "typicality", "outlier"]
    assert scores.uniqueness[300] == pytest.approx(0, abs=1e-5) and scores.uniqueness[10] == pytest.approx(0, abs=1e-5)
    assert scores.outlier[301:].all() and scores.outlier[:300].mean() < 0.05
    assert scores.typicality[301:].max() < scores.typicality[:300].min()
    assert not outliers(np.ones(10)).any()
