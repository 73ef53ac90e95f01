"""One k-NN graph per embedding generation, computed once and read by the scores, the duplicate
search and the map; beyond the exact size it comes from the workspace's own (tuned) ANN index."""
import os

import faiss
import numpy as np
import pytest

from curate import storage
from curate.clock import now
from curate.index import exact_search, recall_at_k
from curate.steps.graph import knn_graph
from curate.steps.index import build_workspace_index, indexed_rows
from curate.workspace import Workspace


def _synthetic_workspace(path, n, d=48, seed=0, zero_rows=()):
    """A workspace holding only embeddings (what the graph reads): clustered unit vectors, some rows
    left empty as for unreadable images."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, d))
    x = centres[rng.integers(0, 40, n)] + 0.7 * rng.normal(size=(n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    x[list(zero_rows)] = 0
    ws = Workspace(path)
    ws.path.mkdir(parents=True)
    storage.write_npy(ws.embeddings_file, x)
    storage.write_json(ws.sidecar(ws.embeddings_file), {"model": "synthetic", "d": d, "n": n, "created": now()})
    return ws, x


def test_graph_is_exact_small_and_reused_until_the_embeddings_change(tmp_path):
    ws, x = _synthetic_workspace(tmp_path / "ws", 3000, zero_rows=[5, 17])
    rows, sims, ids = knn_graph(ws, 10)
    assert np.array_equal(rows, indexed_rows(ws)) and 5 not in rows and not np.isin([5, 17], ids).any()
    ref_sims, ref = exact_search(x[rows], rows, x[rows[:50]], 11)
    assert np.array_equal(ids[:50], ref[:, 1:]) and np.allclose(sims[:50], ref_sims[:, 1:], atol=1e-5)
    assert storage.read_json(ws.sidecar(ws.knn_graph_file))["method"] == "exact"
    stamp = os.stat(ws.knn_graph_file).st_mtime_ns
    rows2, sims2, ids2 = knn_graph(ws, 5)  # narrower: read from the stored, wider graph
    assert os.stat(ws.knn_graph_file).st_mtime_ns == stamp and np.array_equal(ids2, ids[:, :5])
    storage.write_json(ws.sidecar(ws.embeddings_file), {"model": "synthetic", "created": "later"})  # new generation
    knn_graph(ws, 5)
    assert os.stat(ws.knn_graph_file).st_mtime_ns != stamp


def test_large_graph_comes_from_the_tuned_index(tmp_path):
    ws, x = _synthetic_workspace(tmp_path / "ws", 30_000)  # above the exact limit (20k)
    meta = build_workspace_index(ws, factory="IVF256,Flat", recall=0.95)
    rows, sims, ids = knn_graph(ws, 10)
    method = storage.read_json(ws.sidecar(ws.knn_graph_file))["method"]
    assert method.startswith("index IVF256,Flat")
    assert (ids != rows[:, None]).all() and (np.diff(sims, axis=1) <= 1e-6).all()
    _, ref = exact_search(x, np.arange(len(x)), x[rows[:300]], 11)
    assert recall_at_k(ids[:300], ref[:, 1:], 10) >= meta["recall_at_10"] - 0.03


def test_scores_dedup_and_map_share_the_graph(built_workspace_copy):
    from curate.steps.dedup import embedding_neighbours
    from curate.steps.map import build_projection
    from curate.steps.scores import compute_scores

    ws = built_workspace_copy
    ws.knn_graph_file.unlink(missing_ok=True)
    table = compute_scores(ws, k=10)
    stamp = os.stat(ws.knn_graph_file).st_mtime_ns
    rows, sims, ids = knn_graph(ws, 10)
    assert np.array_equal(table["id"], rows)
    assert np.allclose(table["uniqueness"], 1 - sims[:, -1], atol=1e-6)  # the k-th neighbour of the graph
    neighbours = embedding_neighbours(ws, rows, 5)  # what dedup uses: the graph in row positions
    assert np.array_equal(rows[neighbours], ids[:, :5])
    projection = build_projection(ws)
    assert np.isfinite(projection[rows]).all()
    assert os.stat(ws.knn_graph_file).st_mtime_ns == stamp  # nobody recomputed it


@pytest.mark.parametrize("n", [6000])
def test_umap_takes_the_given_neighbours(n):
    """Above umap-learn's all-pairs size, the map is built from the given graph: a graph that links
    each point to random others gives a map without the clusters the true graph shows."""
    from curate.project.maps import umap_2d
    from curate.quality.scores import knn

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32)) * 3
    labels = rng.integers(0, 4, n)
    x = (centres[labels] + rng.normal(size=(n, 32))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    true = knn(x, 15)
    fake_ids = rng.integers(0, n, true[1].shape)
    fake = (np.full(true[0].shape, 0.9, np.float32), fake_ids)

    def separation(m):  # between-cluster spread over within-cluster spread of the 2-D map
        means = np.stack([m[labels == c].mean(0) for c in range(4)])
        within = np.mean([m[labels == c].std(0).mean() for c in range(4)])
        return means.std(0).mean() / within

    assert separation(umap_2d(x, knn=true)) > 3 * separation(umap_2d(x, knn=fake))


def test_a_large_map_is_fitted_on_a_sample_and_the_rest_placed_among_their_neighbours():
    """Above `fit_max` points UMAP sees a sample; every other point lands among the sample points of its
    own cluster, so the map keeps the clusters for all points."""
    from curate.project.maps import umap_2d

    rng = np.random.default_rng(1)
    n, fit_max = 12_000, 4096
    labels = rng.integers(0, 5, n)
    x = (rng.normal(size=(5, 32))[labels] * 3 + rng.normal(size=(n, 32))).astype(np.float32)
    xy = umap_2d(x, fit_max=fit_max)
    assert xy.shape == (n, 2) and np.isfinite(xy).all()
    assert len(np.unique(xy.round(5), axis=0)) > 0.99 * n  # placed points are spread, not stacked on one spot
    _, nearest = faiss.knn(np.ascontiguousarray(xy), np.ascontiguousarray(xy), 2)
    assert np.mean(labels[nearest[:, 1]] == labels) > 0.97  # on the map, a point's neighbour shares its cluster


def test_placement_puts_a_row_at_its_twin_in_the_sample():
    from curate.project.maps import place_by_neighbours

    sample = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    xy = np.random.default_rng(1).uniform(-5, 5, (50, 2)).astype(np.float32)
    placed = place_by_neighbours(sample[[3, 17]] * 2.0, sample, xy, k=1)  # same direction: cosine 1
    np.testing.assert_allclose(placed, xy[[3, 17]], rtol=1e-6)
    between = place_by_neighbours(sample[[3]] + sample[[17]] * 1e-3, sample, xy, k=2)  # pulled toward the closer
    assert np.linalg.norm(between - xy[3]) < np.linalg.norm(between - xy[17])


@pytest.mark.parametrize("strategy", ["facility_location", "probcover", "uniqueness"])
def test_whole_pool_selections_read_the_shared_graph(built_workspace_copy, strategy):
    """A strategy given the workspace's (exact, at 2,000 images) graph ranks as it does searching
    itself; the graph is what it reads (a shuffled graph changes the ranking); a filtered pool
    searches its own neighbours."""
    from curate.select.constraints import Constraints, constrained_select
    from curate.steps.graph import positions
    from curate.steps.select import SelectionRequest, compute_selection

    ws = built_workspace_copy
    rows, sims, ids = knn_graph(ws)
    x = np.asarray(ws.embeddings())[rows]
    graph = (sims, positions(ids, rows))
    params = {"max_degree": 32} if strategy == "probcover" else {}  # (at 2,000 rows ProbCover lists 1,000)
    own = constrained_select(x, 50, strategy, **params)
    assert np.array_equal(constrained_select(x, 50, strategy, neighbours=graph, **params), own)
    saved = compute_selection(ws, SelectionRequest(n=50, strategy=strategy, params=params))
    assert np.array_equal(saved.ids, rows[own])
    perm = np.random.default_rng(0).permutation(len(rows))  # each row gets another row's neighbours
    shuffled = (graph[0][perm], graph[1][perm])
    assert not np.array_equal(constrained_select(x, 50, strategy, neighbours=shuffled, **params), own)
    pool = np.arange(len(x)) % 2 == 0  # a filter: the graph (of all rows) must not be used
    filtered = constrained_select(x, 20, strategy, constraints=Constraints(pool=pool), neighbours=shuffled, **params)
    assert np.array_equal(filtered, constrained_select(x, 20, strategy, constraints=Constraints(pool=pool), **params))
