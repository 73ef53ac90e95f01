"""`curate map` and the map step of `curate run`: the 2-D map of the embeddings.

The main map lives in projection_umap.npy (the contract's name) whatever method made it: UMAP, or
PCA for a set too small for UMAP ('auto') or when asked for (`--map-method pca`). Its sidecar says
which: `method` is the projection actually run, `requested` the one asked for. t-SNE goes to its own
file beside it (`Workspace.map_file`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curate import storage
from curate.clock import now
from curate.generations import inputs_of, write_sidecar
from curate.progress import Progress
from curate.project.maps import project_rows, resolved, takes_neighbours
from curate.steps.graph import knn_graph, positions
from curate.steps.index import indexed_rows
from curate.steps.options import RunOptions
from curate.workspace import Workspace


def build_projection(ws: Workspace, method: str = "auto", seed: int = 0) -> np.ndarray:
    """(N, 2) map; rows without an embedding are NaN (the app leaves them out). UMAP takes its
    neighbours from the workspace's k-NN graph. The sidecar records the method run ('auto' resolved)."""
    inputs = inputs_of(ws.path, [ws.embeddings_file.name])
    vectors = ws.embeddings()
    ids, knn = indexed_rows(ws), None
    used = resolved(method, len(ids))
    if takes_neighbours(used, len(ids)):  # UMAP: the graph shared with the scores and the duplicate search
        ids, sims, neighbours = knn_graph(ws)
        knn = (sims, positions(neighbours, ids))
    out = project_rows(vectors, ids, used, seed, knn=knn)
    file = ws.map_file(method)
    storage.write_npy(file, out)
    write_sidecar(file, {"method": used, "requested": method, "seed": seed, "created": now()}, inputs)
    return out


def map_method(ws: Workspace, which: str = "umap") -> str:
    """The projection that made the saved map `which` ('umap': the main map, 'tsne'), from its sidecar:
    'umap', 'pca' or 'tsne'. A sidecar written before it recorded the method run says 'auto': that is
    resolved by the number of points on the map, as the map step resolved it."""
    file = ws.map_file(which)
    if file == ws.tsne_file:
        return "tsne"
    side = ws.sidecar(file)
    method = storage.read_json(side).get("method", "auto") if side.exists() else "auto"
    if method != "auto":
        return method
    points = int(np.isfinite(np.load(file, mmap_mode="r")[:, 0]).sum()) if file.exists() else 0
    return resolved(method, points)


@dataclass(frozen=True)
class MapSummary:
    method: str  # the projection run
    rows: int  # rows on the map
    seconds: float
    file: Path

    def lines(self) -> list[str]:
        return [f"{self.method} map of {self.rows:,} rows in {self.seconds:.1f}s -> {self.file}"]


def _timed_map(ws: Workspace, method: str, seed: int) -> MapSummary:
    start = time.perf_counter()
    out = build_projection(ws, method, seed)
    return MapSummary(map_method(ws, "tsne" if method == "tsne" else "umap"), int(np.isfinite(out[:, 0]).sum()),
                      time.perf_counter() - start, ws.map_file(method))


def run(ws: Workspace, options: RunOptions, progress: Progress | None = None) -> MapSummary:
    """The map step: the main map by `options.map_method`, seeded by `options.seed`."""
    return _timed_map(ws, options.map_method, options.seed or 0)


def run_tsne(ws: Workspace, options: RunOptions, progress: Progress | None = None) -> MapSummary:
    """The t-SNE map beside the main one (`curate map --method tsne`, the app's Explore page)."""
    return _timed_map(ws, "tsne", options.seed or 0)
