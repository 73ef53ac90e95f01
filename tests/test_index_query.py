"""Several-image queries (`curate.index.query`): checked against exhaustive numpy scans."""
from __future__ import annotations

import numpy as np
import pytest

from curate.index import build_index
from curate.index.query import combine_queries, multi_search, similarity_scores


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus():
    """300 unit vectors in 3 tight clusters of 100 (ids 0-99, 100-199, 200-299) in 16-d."""
    rng = np.random.default_rng(0)
    centres = unit(rng.normal(size=(3, 16)))
    x = unit(np.repeat(centres, 100, axis=0) + 0.05 * rng.normal(size=(300, 16)))
    index, _ = build_index(x, np.arange(300), factory="IDMap2,Flat")
    return x, index


def test_combine_queries_is_the_normalised_mean_of_normalised_positives():
    q = combine_queries(np.array([[3.0, 0.0], [0.0, 0.5]]))  # lengths differ: each counts equally
    assert np.allclose(q, [2 ** -0.5, 2 ** -0.5]) and q.dtype == np.float32
    with pytest.raises(ValueError, match="cancel"):
        combine_queries(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    with pytest.raises(ValueError, match="no embedding"):
        combine_queries(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="at least one"):
        combine_queries(np.empty((0, 2)))


def test_scores_by_hand():
    cand = np.array([[1.0, 0.0], [0.0, 1.0], [2 ** -0.5, 2 ** -0.5]], np.float32)
    pos = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    assert np.allclose(similarity_scores(cand, pos, mode="max"), [1, 1, 2 ** -0.5])
    assert np.allclose(similarity_scores(cand, pos, mode="mean"), [2 ** -0.5, 2 ** -0.5, 1])
    neg = np.array([[0.0, 1.0]], np.float32)
    assert np.allclose(similarity_scores(cand, pos, neg, mode="max", negative_weight=0.5),
                       [1 - 0, 1 - 0.5, 2 ** -0.5 - 0.5 * 2 ** -0.5])
    with pytest.raises(ValueError, match="mode"):
        similarity_scores(cand, pos, mode="median")


@pytest.mark.parametrize("k", [5, 25, 120])  # 5: candidates from the index; 120: the whole corpus scored
@pytest.mark.parametrize("mode", ["mean", "max"])
def test_matches_an_exhaustive_scan(corpus, mode, k):
    x, index = corpus
    ids = np.array([3, 150, 151])
    scores, found = multi_search(index, x, x[ids], k=k, mode=mode, exclude=ids)
    exact = similarity_scores(x, x[ids], mode=mode)
    exact[ids] = -np.inf
    expected = np.argsort(-exact, kind="stable")[:k]
    assert len(found) == k and found.tolist() == expected.tolist()
    assert np.allclose(scores, exact[expected], atol=1e-5)
    assert not np.isin(found, ids).any() and np.all(np.diff(scores) <= 1e-6)


def test_max_returns_the_neighbours_of_every_positive(corpus):
    x, index = corpus
    positives = np.array([0, 200])  # one image in cluster 0, one in cluster 2
    _, by_max = multi_search(index, x, x[positives], k=40, mode="max", exclude=positives)
    clusters = by_max // 100
    assert set(clusters.tolist()) == {0, 2}  # neighbours of both, though the clusters are far apart
    _, single = multi_search(index, x, x[[0]], k=20, exclude=[0])
    assert set(single // 100) == {0}


def test_negatives_push_their_neighbourhood_down(corpus):
    x, index = corpus
    positives, negatives = np.array([0, 200]), np.array([201])
    _, plain = multi_search(index, x, x[positives], k=30, mode="max", exclude=positives)
    _, penalised = multi_search(index, x, x[positives], x[negatives], k=30, mode="max", negative_weight=1.0,
                                exclude=[*positives, *negatives])
    assert (plain // 100 == 2).any()
    assert not (penalised // 100 == 2).any()  # like the negative (same cluster): sunk below cluster 0
    assert 201 not in penalised.tolist()
    exact = similarity_scores(x, x[positives], x[negatives], mode="max")
    exact[[*positives, *negatives]] = -np.inf
    best = np.sort(exact)[::-1][:30]  # the oversampled candidates hold the true best here
    _, found = multi_search(index, x, x[positives], x[negatives], k=30, mode="max", exclude=[*positives, *negatives])
    assert np.allclose(np.sort(exact[found])[::-1], best, atol=1e-5)


def test_k_beyond_the_corpus_and_zero(corpus):
    x, index = corpus
    scores, found = multi_search(index, x, x[[5]], k=1_000, exclude=[5])
    assert len(found) == 299 and len(set(found.tolist())) == 299
    assert len(multi_search(index, x, x[[5]], k=0)[1]) == 0


def test_images_without_an_embedding_are_never_returned(corpus):
    x, _ = corpus
    x = x.copy()
    x[::3] = 0  # skipped images: zero rows, left out of the index as `curate index` does
    kept = np.flatnonzero(x.any(1))
    index, _ = build_index(x[kept], kept, factory="IDMap2,Flat")
    for k in (10, 1_000):  # from the index, and scoring every row
        _, found = multi_search(index, x, x[[1]], k=k, mode="max", exclude=[1])
        assert len(found) == min(k, len(kept) - 1) and not np.isin(found, np.arange(0, 300, 3)).any()
