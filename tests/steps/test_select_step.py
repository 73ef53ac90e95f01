"""The selection step's helpers: k-means colouring of the map's rows, the saved-selections summary."""
import numpy as np


def _points(n=300, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


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
