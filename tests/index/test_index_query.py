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


def test_open_workspace_similar_checks_its_query_ids_and_returns_the_search_table(tmp_path):
    """`OpenWorkspace.similar` (the app's search): the query checks, then `multi_search`, in the table
    `OpenWorkspace.search` returns."""
    from curate import storage
    from curate.session import open_workspace
    from curate.steps.index import build_workspace_index
    from tests.ui.test_app_explore import synthetic_workspace

    ws = synthetic_workspace(tmp_path / "ws", 300)
    x = np.array(ws.embeddings())
    x[7] = 0  # image 7 has no embedding
    storage.write_npy(ws.embeddings_file, x)
    build_workspace_index(ws)
    session = open_workspace(ws.path)
    table = session.similar((3, 5), (9,), mode="max", k=10)
    scores, ids = multi_search(session.index, x, x[[3, 5]], x[[9]], 10, "max", exclude=[3, 5, 9])
    assert table.columns.tolist() == session.search(3, 4).columns.tolist() == [
        "id", "path", "label", "similarity", "distance", "kind"]
    assert table["id"].tolist() == ids.tolist() and np.allclose(table["similarity"], scores)
    assert np.allclose(table["distance"], np.sqrt(np.clip(2 - 2 * scores, 0, None)))
    assert (table["path"] == session.manifest["path"].iloc[ids].to_numpy()).all()
    uploaded = session.similar(vector=x[3], k=3)  # an outside image: nothing left out
    assert uploaded["id"].iloc[0] == 3 and np.isclose(uploaded["similarity"].iloc[0], 1, atol=1e-5)
    with pytest.raises(ValueError, match="no image with id 300: ids go from 0 to 299"):
        session.similar((300,))
    for query in (lambda: session.similar((1,), (7,)), lambda: session.search(7)):
        with pytest.raises(ValueError, match="image 7 has no embedding"):
            query()
