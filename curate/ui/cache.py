"""Every caching wrapper of the app, in one place: each is a declaration of the workspace files a
library call reads.

`cached(files=...)` keys Streamlit's cache by the call's arguments (a `Workspace` by its path) plus the
path, modification time and size of every file `files(*args)` names, so a rebuilt workspace is
reloaded, never served stale. `resource=True` (`st.cache_resource`) holds big, shared, read-only
objects (manifest, searcher, encoder, maps, map figure): shared by all sessions, never mutate them
(arrays come back read-only). Otherwise `st.cache_data` holds small tables and thumbnails (callers
get copies).
"""
from __future__ import annotations

import functools
import inspect
import io
import os
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import streamlit as st

from curate import storage
from curate.data.sources import item_source
from curate.data.tags import read_tags
from curate.project.maps import project_rows
from curate.select.filters import Filters
from curate.session import OpenWorkspace, open_workspace
from curate.steps import dedup as dedup_step
from curate.steps.compare import compare_selections
from curate.steps.index import indexed_rows
from curate.steps.label_issues import review_table
from curate.steps.scores import image_table as full_image_table
from curate.steps.select import SelectionRequest, cluster_rows, compute_selection, saved_selections
from curate.ui import access, map_figure, thumbnails
from curate.ui.hover import Sheets, prepare_sheets
from curate.ui.map_view import CLUSTER, SELECTIONS, MapView, chart
from curate.workspace import Workspace


def file_key(files: Iterable[Path]) -> tuple:
    """(path, mtime ns, size) of each file, (path, 0, -1) for a missing one: what changes when one is rewritten."""
    key = []
    for f in files:
        try:
            stat = os.stat(f)
        except FileNotFoundError:
            key.append((str(f), 0, -1))
            continue
        key.append((str(f), stat.st_mtime_ns, stat.st_size))
    return tuple(key)


def cached(files: Callable[..., Iterable[Path]] | None = None, *, max_entries: int, resource: bool = False,
           spinner: str | bool = False, ttl: float | None = None):
    """Declare a cached computation: `files` takes the function's arguments and names the files it reads;
    `resource` picks `st.cache_resource` over `st.cache_data`; `spinner` is shown while it runs."""
    def declare(fn):
        def keyed(files_now: tuple, *args):  # streamlit hashes every argument: files_now changes on a rewrite
            out = fn(*args)
            if resource and isinstance(out, np.ndarray):
                out.setflags(write=False)  # shared by every session
            return out

        # streamlit names a cache by the function's module and qualified name: one per declaration
        keyed.__module__, keyed.__qualname__ = fn.__module__, f"{fn.__qualname__}.cached"
        store = (st.cache_resource if resource else st.cache_data)(
            max_entries=max_entries, ttl=ttl, show_spinner=spinner, hash_funcs={Workspace: lambda ws: str(ws.path)})
        store = store(keyed)
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()  # one key whether an argument was given by position, by name or left out
            return store(file_key(files(*bound.args) if files else ()), *bound.args)

        call.clear = store.clear
        return call
    return declare


def _search_files(ws: Workspace, *_) -> list[Path]:
    return [ws.manifest_file, ws.embeddings_file, ws.index_file]


def _table_files(ws: Workspace) -> list[Path]:
    return [ws.manifest_file, ws.scores_file, ws.duplicates_file, ws.tags_file, ws.label_issues_file,
            ws.label_fixes_file]


def _saved_selection_files(ws: Workspace) -> list[Path]:
    return sorted([*ws.selections_dir.glob("*.parquet"), *ws.selections_dir.glob("*.json")])


# --- big shared objects (cache_resource) -------------------------------------------------------
@cached(lambda ws: [ws.manifest_file], resource=True, max_entries=4, spinner="Reading the manifest…")
def manifest(ws: Workspace) -> pd.DataFrame:
    """The manifest (shared, read-only)."""
    return ws.manifest()


@cached(lambda ws, expression: [ws.manifest_file, ws.views_file], max_entries=32)
def where_count(ws: Workspace, expression: str) -> int:
    """Items for which the sidebar's filter holds (WhereError names a mistake)."""
    from curate.data.where import where_mask

    return int(where_mask(manifest(ws), expression).sum())


@cached(_search_files, resource=True, max_entries=2, spinner="Loading embeddings and index…")
def searcher(ws: Workspace) -> OpenWorkspace:
    """`OpenWorkspace` with manifest, embeddings and index loaded (shared, read-only)."""
    session = open_workspace(ws.path)
    session.manifest, session.embeddings, session.index  # noqa: B018 - load now, before sharing it
    return session


@cached(lambda ws: [*_search_files(ws), ws.encoder_file], resource=True, max_entries=2, spinner="Loading the encoder…")
def searcher_with_encoder(ws: Workspace) -> OpenWorkspace:
    """`searcher` with its encoder loaded too (needed only to embed uploads)."""
    session = searcher(ws)
    session.encoder  # noqa: B018 - the one lazy load on the shared object, done once under this cache's lock
    return session


@cached(lambda ws, method: [ws.map_file(method)], resource=True, max_entries=2, spinner="Loading the map…")
def saved_map(ws: Workspace, method: str) -> np.ndarray:
    """(N, 2) float32 map `curate run` / `curate map` saved, NaN rows for images without an embedding."""
    return ws.projection(method)


@cached(lambda ws: [ws.embeddings_file], resource=True, max_entries=2, spinner="Projecting the embeddings (PCA)…")
def pca_map(ws: Workspace) -> np.ndarray:
    """(N, 2) PCA of the embeddings, NaN rows for images without one."""
    return project_rows(ws.embeddings(), indexed_rows(ws), "pca")


def map_xy(ws: Workspace, projection: str) -> np.ndarray:
    """(N, 2) map, NaN rows for images without an embedding: the saved UMAP or t-SNE, or a PCA of the embeddings."""
    return pca_map(ws) if projection == "pca" else saved_map(ws, projection)


@cached(lambda ws, k: [ws.embeddings_file], resource=True, max_entries=4,
        spinner="Clustering the embeddings (k-means)…")
def clusters(ws: Workspace, k: int) -> np.ndarray:
    """(N,) k-means cluster of every id's embedding, -1 for images without one."""
    return cluster_rows(ws.embeddings(), indexed_rows(ws), int(k))


@cached(lambda ws: [ws.fingerprints_file, ws.manifest_file], resource=True, max_entries=4)
def hover_sheets(ws: Workspace) -> Sheets | None:
    """The sprite sheets the map's hover previews read (written in the background the first time), None
    without fingerprints."""
    if not ws.fingerprints_file.exists():
        return None
    sizes = manifest(ws)[["width", "height"]].to_numpy(np.float64, na_value=np.nan)
    return prepare_sheets(ws, ws.fingerprints_file, sizes)


@cached(_table_files, resource=True, max_entries=2, spinner="Reading scores, duplicates and tags…")
def image_table(ws: Workspace) -> pd.DataFrame:
    """The manifest plus scores, duplicate group and tags (`curate.steps.scores.image_table`; shared, read-only)."""
    return full_image_table(ws, manifest(ws))


def _chart_files(ws: Workspace, view: MapView) -> list[Path]:
    extra = ([ws.embeddings_file] if view.colour == CLUSTER else
             _saved_selection_files(ws) if view.colour == SELECTIONS else [])
    map_file = ws.embeddings_file if view.projection == "pca" else ws.map_file(view.projection)
    return [*_table_files(ws), map_file, *extra]


@cached(_chart_files, resource=True, max_entries=8, spinner="Drawing the map…")
def explore_chart(ws: Workspace, view: MapView) -> map_figure.MapChart:
    """The Explore map for `view`, rebuilt only when the view or a file it reads changes."""
    groups = clusters(ws, view.clusters) if view.colour == CLUSTER else None
    chosen = ({name: ws.selection(name)["id"].to_numpy() for name in ws.selection_names()}
              if view.colour == SELECTIONS else None)
    return chart(image_table(ws), map_xy(ws, view.projection), view, tags(ws), groups, chosen)


# --- small tables and files (cache_data) -------------------------------------------------------
@cached(lambda ws, name: [ws.selection_file(name)], max_entries=32)
def selection(ws: Workspace, name: str) -> pd.DataFrame:
    """Selection `name`: id, rank, score, sorted by rank."""
    return ws.selection(name).sort_values("rank").reset_index(drop=True)


@cached(_saved_selection_files, max_entries=8)
def selections_summary(ws: Workspace) -> pd.DataFrame:
    """One row per saved selection (`curate.steps.select.saved_selections`)."""
    return saved_selections(ws)


@cached(lambda ws: [ws.duplicates_file], max_entries=4)
def duplicates(ws: Workspace) -> pd.DataFrame | None:
    """duplicates.parquet (id, group, kind, keeper), or None before `curate dedup`."""
    return ws.duplicates()


@cached(lambda ws, n: [ws.duplicate_pairs_file, ws.duplicate_marks_file, ws.sidecar(ws.duplicates_file)],
        max_entries=4)
def review_pairs(ws: Workspace, n: int) -> pd.DataFrame:
    """The unmarked candidate pairs nearest the duplicate threshold (`curate.steps.dedup.review_pairs`);
    re-read only when the pairs, the marks or the threshold change (the pairs file can be large)."""
    return dedup_step.review_pairs(ws, n)


@cached(lambda ws: [ws.label_issues_file, ws.label_fixes_file], max_entries=4)
def label_review(ws: Workspace) -> pd.DataFrame | None:
    """The flagged images with their decisions, most likely wrong first (`curate.steps.label_issues.review_table`);
    None before `curate label-issues`."""
    return review_table(ws)


@cached(lambda ws: [ws.tags_file], max_entries=4)
def tags(ws: Workspace) -> pd.DataFrame:
    """tags.parquet: one row per (id, tag)."""
    return read_tags(ws)


def tag_counts(ws: Workspace) -> pd.DataFrame:
    """tag, images: one row per tag, most used first."""
    counts = tags(ws)["tag"].value_counts()
    return counts.rename_axis("tag").reset_index(name="images")


@cached(lambda file: [file], max_entries=4)
def jsonl_rows(file: Path) -> pd.DataFrame:
    """A JSON-lines log as a table; empty when absent."""
    return pd.DataFrame(storage.read_jsonl(file))


def train_log(ws: Workspace) -> pd.DataFrame:
    """model/train_log.jsonl as a table (step, loss, ...); empty before training."""
    return jsonl_rows(ws.train_log_file)


def health_log(ws: Workspace) -> pd.DataFrame:
    """model/health_log.jsonl as a table (step, elapsed_s, effective_rank, alignment, ...); may be empty."""
    return jsonl_rows(ws.health_log_file)


@cached(lambda file: [file], max_entries=16)
def json_file(file: Path) -> dict | None:
    """A small JSON file (model config, eval report), or None when absent."""
    return storage.read_json(file) if Path(file).exists() else None


def report_png(ws: Workspace, name: str) -> bytes | None:
    """The bytes of reports/<name> (a PNG `curate eval` wrote), or None when absent."""
    return file_bytes(ws.reports_dir / Path(name).name)  # a bare file name: nothing outside reports/ is read


@cached(lambda file: [file], max_entries=16)
def file_bytes(file: Path) -> bytes | None:
    return file.read_bytes() if file.exists() else None


@cached(lambda ws, image_id, size: [ws.manifest_file], max_entries=5_000)  # a 96 px PNG is 3-20 kB
def thumbnail(ws: Workspace, image_id: int, size: int = thumbnails.THUMB_SIZE) -> bytes:
    """PNG thumbnail of manifest id `image_id` (an object: its crop; a frame: the frame), read only from
    inside the image root."""
    table = manifest(ws)
    source = item_source(ws.root, table, int(image_id), ws.frame_store_dir)
    return thumbnails.thumbnail_inside(ws.root, str(table["path"].iloc[int(image_id)]), size, source)


@cached(lambda ws, item_id, size: [ws.manifest_file], max_entries=64)
def boxed_parent(ws: Workspace, item_id: int, size: int) -> bytes:
    """PNG of the image or frame object `item_id` belongs to, with its box drawn (inside the image root only)."""
    table = manifest(ws)
    source = item_source(ws.root, table, int(item_id), ws.frame_store_dir)
    return thumbnails.boxed_parent_inside(ws.root, str(table["path"].iloc[int(item_id)]), source, size)


@cached(lambda ws, data, size, box: [*_search_files(ws), ws.encoder_file], max_entries=16, spinner="Embedding the image…")
def upload_query(ws: Workspace, data: bytes, size: int, box: tuple[float, ...] | None = None
                 ) -> tuple[np.ndarray, bytes]:
    """((D,) embedding, PNG thumbnail fitted to `size`) of an uploaded image's bytes, from one decode
    (curate's safe `load_rgb`, reduced to what the embedding needs); with `box` (x0, y0, x1, y1 pixels)
    of the box's crop with context, as objects are embedded."""
    session = searcher_with_encoder(ws)
    img = session.decode_for_embedding(io.BytesIO(data), box)
    return session.embed_image(img), thumbnails.png(thumbnails.fit_box(img, size))


@cached(max_entries=8)
def upload_preview(data: bytes, side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """((h, w, 3) uint8 at most `side` px, (width, height) of the whole image) of an uploaded image, to draw
    a box on: decoded safely and reduced (JPEG in the DCT domain), the size read from its header."""
    from curate.data.images import QUERY_MAX_PIXELS, image_size, load_rgb

    preview = load_rgb(io.BytesIO(data), max_side=side, max_pixels=QUERY_MAX_PIXELS)
    return np.asarray(preview), image_size(io.BytesIO(data))


def workspaces_near(current: str | None) -> list[str]:
    """Workspaces (folders holding workspace.json) beside `current` and in ./workspaces, sorted."""
    folders = [Path.cwd() / "workspaces"] + ([Workspace(current).path.parent] if current else [])
    roots = access.allowed_roots()
    return [w for w in _workspaces_in(tuple(dict.fromkeys(str(f) for f in folders)))
            if roots is None or any(Path(w).is_relative_to(r) for r in roots)]  # only what may be opened


@cached(ttl=10, max_entries=16)  # short: a run started elsewhere shows up soon
def _workspaces_in(folders: tuple[str, ...]) -> list[str]:
    found = []
    for folder in folders:
        try:
            found += [str(meta.parent.resolve()) for meta in Path(folder).glob("*/workspace.json")]
        except OSError:  # unreadable folder: nothing to offer from it
            continue
    return sorted(set(found))


# --- search / select ---------------------------------------------------------------------------
@cached(_search_files, max_entries=32, spinner="Searching…")
def similar(ws: Workspace, positives: tuple[int, ...] = (), negatives: tuple[int, ...] = (),
            vector: np.ndarray | None = None, mode: str = "mean", negative_weight: float = 1.0,
            k: int = 100, kind: str | None = None, where: str | None = None) -> pd.DataFrame:
    """`OpenWorkspace.similar`: the k items of `kind` (for which `where` holds) most like the positives (and an
    uploaded image's `vector`), least like the negatives: id, path, label, similarity, distance, kind."""
    return searcher(ws).similar(positives, negatives, vector, mode, negative_weight, k, kind, where)


def _preview_files(ws: Workspace, request: dict) -> list[Path]:
    return [*_search_files(ws), *_table_files(ws), ws.sidecar(ws.duplicates_file), *_saved_selection_files(ws)]


@cached(_preview_files, max_entries=16, spinner="Ranking images…")
def selection_preview(ws: Workspace, request: dict) -> dict:
    """`compute_selection` for `request` (SelectionRequest fields, filters as a dict): ids (priority
    order), metrics, request as it would be saved, strategy (the one that ranked them), seconds."""
    req = SelectionRequest(**{**request, "filters": Filters(**request.get("filters", {}))})
    start = time.perf_counter()
    result = compute_selection(ws, req)
    return {"ids": result.ids, "metrics": result.metrics, "request": result.request, "strategy": result.strategy,
            "seconds": time.perf_counter() - start}


@cached(lambda ws, a, b: [*_search_files(ws), ws.selection_file(a), ws.selection_file(b)], max_entries=8,
        spinner="Comparing the selections…")
def comparison(ws: Workspace, a: str, b: str) -> dict:
    """`compare_selections` of saved selections a and b (overlap, Jaccard, metrics of each on the same pool)."""
    return compare_selections(ws, a, b)
