"""2-D maps beyond UMAP: t-SNE (openTSNE) keeps clusters apart, scales by sample-and-place, and
`curate map --method tsne` writes its own checked file beside the main map."""
from __future__ import annotations

import logging

import faiss
import numpy as np
import pytest

from curate import storage
from curate.cli import main
from curate.generations import StaleFile, write_sidecar
from curate.project.maps import PROJECTIONS, UMAP_MIN_POINTS, project_2d, project_rows, tsne_2d
from curate.steps.index import indexed_rows
from curate.steps.map import build_projection, map_method
from curate.ui.map_view import map_choices, map_label


def clustered(n: int, seed: int = 0, classes: int = 5, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return (rng.normal(size=(classes, dim))[labels] * 3 + rng.normal(size=(n, dim))).astype(np.float32), labels


def neighbour_agreement(xy: np.ndarray, labels: np.ndarray) -> float:
    """Share of points whose nearest other point on the map has their label."""
    _, nearest = faiss.knn(np.ascontiguousarray(xy), np.ascontiguousarray(xy), 2)
    return float(np.mean(labels[nearest[:, 1]] == labels))


def test_tsne_is_registered_and_keeps_clusters_apart():
    x, labels = clustered(800)
    xy = project_2d(x, "tsne")
    assert PROJECTIONS.get("tsne") is tsne_2d and xy.shape == (800, 2) and xy.dtype == np.float32
    assert neighbour_agreement(xy, labels) > 0.97
    assert np.array_equal(xy, tsne_2d(x))  # seeded: the same map twice


def test_a_large_tsne_map_is_fitted_on_a_sample_and_the_rest_placed():
    x, labels = clustered(4000, seed=1)
    xy = tsne_2d(x, fit_max=800)
    assert xy.shape == (4000, 2) and np.isfinite(xy).all()
    assert len(np.unique(xy.round(5), axis=0)) > 0.99 * len(x)
    assert neighbour_agreement(xy, labels) > 0.97


def test_project_rows_maps_the_listed_rows_and_leaves_the_others_out():
    x, _ = clustered(100)
    rows = np.arange(0, 100, 2)  # say the odd ids have no embedding
    xy = project_rows(x, rows, "pca")
    assert xy.shape == (100, 2) and xy.dtype == np.float32 and np.isnan(xy[1::2]).all()
    assert np.array_equal(xy[rows], project_2d(x[rows], "pca"))


def test_tsne_of_a_handful_of_points_does_not_fail():
    x, _ = clustered(3)
    assert tsne_2d(x).shape == (3, 2)
    x, _ = clustered(12)
    assert np.isfinite(tsne_2d(x)).all()  # perplexity shrinks to fit


def test_curate_map_writes_a_tsne_file_beside_the_umap(built_workspace_copy, capsys, caplog):
    ws = built_workspace_copy
    umap_before = ws.projection_file.read_bytes()
    with pytest.raises(FileNotFoundError, match="curate map -w WS --method tsne"):
        ws.projection("tsne")
    caplog.set_level(logging.INFO)  # curate's own level: openTSNE's INFO chatter must still stay out
    assert main(["map", "-w", str(ws.path), "--method", "tsne"]) == 0
    assert "tsne map of 2,000 rows" in capsys.readouterr().out
    assert not [r for r in caplog.records if r.name.startswith("openTSNE") and r.levelno < logging.WARNING]
    xy, rows = ws.projection("tsne"), indexed_rows(ws)
    assert np.isfinite(xy[rows]).all() and ws.projection_file.read_bytes() == umap_before
    labels = ws.manifest()["path"].str.split("/").str[0].to_numpy()[rows]
    assert neighbour_agreement(xy[rows], labels) > 0.2  # a briefly trained encoder: better than chance (0.1)
    meta = storage.read_json(ws.sidecar(ws.embeddings_file))
    write_sidecar(ws.embeddings_file, meta)  # a new generation of the embeddings, as `curate embed` writes one
    with pytest.raises(StaleFile, match="curate map --method tsne"):
        ws.projection("tsne")


def test_the_main_map_of_a_tiny_set_is_a_pca_and_says_so(built_workspace_copy):
    """projection_umap.npy keeps its name, but its sidecar records the method run ('auto' resolved) and
    the app labels the map from it: UMAP for the 2,000 images, PCA once fewer than UMAP takes."""
    ws = built_workspace_copy
    assert map_method(ws) == "umap" and map_label(ws, "umap") == "UMAP"
    vectors = ws.embeddings(mmap=False).copy()
    vectors[UMAP_MIN_POINTS // 2:] = 0  # only the first 32 images keep an embedding
    storage.write_npy(ws.embeddings_file, vectors)
    write_sidecar(ws.embeddings_file, storage.read_json(ws.sidecar(ws.embeddings_file)))  # as `curate embed` does
    build_projection(ws)
    meta = storage.read_json(ws.sidecar(ws.projection_file))
    assert meta["method"] == "pca" and meta["requested"] == "auto"
    assert map_method(ws) == "pca" and map_label(ws, "umap") == "PCA"
    assert map_choices(ws) == ["umap", "tsne"]  # the saved PCA, not a second one beside it
    xy = ws.projection()
    assert np.isfinite(xy[:UMAP_MIN_POINTS // 2]).all() and np.isnan(xy[UMAP_MIN_POINTS // 2:]).all()
