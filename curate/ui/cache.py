"""Every caching wrapper of the app, in one place.

`st.cache_resource` holds big, shared, read-only objects (manifest, embeddings + index, encoder,
2-D map, map figure); `st.cache_data` holds small tables and thumbnails (callers get copies).
Each public function takes a `Workspace` and keys its private cached twin by the workspace path
plus the modification times of the files it reads, so a rebuilt workspace is reloaded, not served
stale (those key parameters look unused, but streamlit hashes every argument not starting with
`_` into the cache key). Objects from `cache_resource` are shared by all sessions: never mutate them.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from curate import storage
from curate.data.tags import read_tags
from curate.index.query import multi_search
from curate.project.maps import pca_2d
from curate.select.filters import Filters
from curate.session import OpenWorkspace, open_workspace
from curate.steps import dedup as dedup_step
from curate.steps.compare import compare_selections
from curate.steps.index import indexed_rows
from curate.steps.label_issues import review_table
from curate.steps.scores import image_table as full_image_table
from curate.steps.select import SelectionRequest, compute_selection, kmeans_clusters
from curate.ui import access, map_figure, thumbnails
from curate.ui.hover import Sheets, prepare_sheets
from curate.ui.map_view import CLUSTER, SELECTIONS, MapView, chart
from curate.workspace import Workspace, resolve_inside, safe_name


def stamp(*files: Path) -> tuple[int, ...]:
    """Modification times (ns) of `files`, 0 for a missing one: part of every cache key."""
    return tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)


def _search_files(ws: Workspace) -> tuple[int, ...]:
    return stamp(ws.manifest_file, ws.embeddings_file, ws.index_file)


# --- big shared objects (cache_resource) -------------------------------------------------------
def manifest(ws: Workspace) -> pd.DataFrame:
    """The manifest (shared, read-only)."""
    return _manifest(str(ws.path), stamp(ws.manifest_file))


@st.cache_resource(max_entries=4, show_spinner="Reading the manifest…")
def _manifest(path: str, key: tuple) -> pd.DataFrame:
    return Workspace(path).manifest()


def searcher(ws: Workspace) -> OpenWorkspace:
    """`OpenWorkspace` with manifest, embeddings and index loaded (shared, read-only)."""
    return _searcher(str(ws.path), _search_files(ws))


@st.cache_resource(max_entries=2, show_spinner="Loading embeddings and index…")
def _searcher(path: str, key: tuple) -> OpenWorkspace:
    session = open_workspace(path)
    session.manifest, session.embeddings, session.index  # noqa: B018 - load now, before sharing it
    return session


@st.cache_resource(max_entries=2, show_spinner="Loading the encoder…")
def _searcher_with_encoder(path: str, search_key: tuple, encoder_key: tuple) -> OpenWorkspace:
    """`_searcher` with its encoder loaded too (needed only to embed uploads)."""
    session = _searcher(path, search_key)
    session.encoder  # noqa: B018 - the one lazy load on the shared object, done once under this cache's lock
    return session


@st.cache_resource(max_entries=2, show_spinner="Loading the map…")
def _projection(path: str, key: tuple, method: str = "umap") -> np.ndarray:
    """(N, 2) float32 map, NaN rows for images without an embedding (read-only)."""
    xy = Workspace(path).projection(method)
    xy.setflags(write=False)
    return xy


# --- small tables (cache_data) -----------------------------------------------------------------
def selection(ws: Workspace, name: str) -> pd.DataFrame:
    """Selection `name`: id, rank, score, sorted by rank."""
    file = ws.selections_dir / f"{safe_name(name)}.parquet"
    return _selection(str(ws.path), name, stamp(file))


@st.cache_data(max_entries=32, show_spinner=False)
def _selection(path: str, name: str, key: tuple) -> pd.DataFrame:
    return Workspace(path).selection(name).sort_values("rank").reset_index(drop=True)


def selections_summary(ws: Workspace) -> pd.DataFrame:
    """One row per saved selection: name, strategy, n, coverage radius, created."""
    files = sorted(ws.selections_dir.glob("*.json"))
    return _selections_summary(str(ws.path), tuple(f.name for f in files), stamp(*files))


@st.cache_data(max_entries=8, show_spinner=False)
def _selections_summary(path: str, names: tuple, key: tuple) -> pd.DataFrame:
    ws = Workspace(path)
    rows = []
    for name in ws.selection_names():
        meta = ws.selection_meta(name) if (ws.selections_dir / f"{name}.json").exists() else {}
        rows.append({"name": name, "strategy": meta.get("strategy"), "n": meta.get("n"),
                     "coverage radius": (meta.get("metrics") or {}).get("coverage_radius"),
                     "created": meta.get("created")})
    return pd.DataFrame(rows, columns=["name", "strategy", "n", "coverage radius", "created"])


def duplicates(ws: Workspace) -> pd.DataFrame | None:
    """duplicates.parquet (id, group, kind, keeper), or None before `curate dedup`."""
    return _duplicates(str(ws.path), stamp(ws.duplicates_file))


@st.cache_data(max_entries=4, show_spinner=False)
def _duplicates(path: str, key: tuple) -> pd.DataFrame | None:
    return Workspace(path).duplicates()


def review_pairs(ws: Workspace, n: int) -> pd.DataFrame:
    """The unmarked candidate pairs nearest the duplicate threshold (`curate.steps.dedup.review_pairs`);
    re-read only when the pairs, the marks or the threshold change (the pairs file can be large)."""
    key = stamp(dedup_step.pairs_file(ws), dedup_step.marks_file(ws), ws.sidecar(ws.duplicates_file))
    return _review_pairs(str(ws.path), n, key)


@st.cache_data(max_entries=4, show_spinner=False)
def _review_pairs(path: str, n: int, key: tuple) -> pd.DataFrame:
    return dedup_step.review_pairs(Workspace(path), n)


def label_review(ws: Workspace) -> pd.DataFrame | None:
    """The flagged images with their decisions, most likely wrong first (`curate.steps.label_issues.review_table`);
    None before `curate label-issues`."""
    return _label_review(str(ws.path), stamp(ws.label_issues_file, ws.label_fixes_file))


@st.cache_data(max_entries=4, show_spinner=False)
def _label_review(path: str, key: tuple) -> pd.DataFrame | None:
    return review_table(Workspace(path))


def train_log(ws: Workspace) -> pd.DataFrame:
    """model/train_log.jsonl as a table (step, loss, ...); empty before training."""
    file = ws.model_dir / "train_log.jsonl"
    return _jsonl_rows(str(file), stamp(file))


def health_log(ws: Workspace) -> pd.DataFrame:
    """model/health_log.jsonl as a table (step, elapsed_s, effective_rank, alignment, ...); may be empty."""
    file = ws.model_dir / "health_log.jsonl"
    return _jsonl_rows(str(file), stamp(file))


@st.cache_data(max_entries=4, show_spinner=False)
def _jsonl_rows(file: str, key: tuple) -> pd.DataFrame:
    return pd.DataFrame(storage.read_jsonl(file))


def json_file(file: Path) -> dict | None:
    """A small JSON file (model config, eval report), or None when absent."""
    return _json_file(str(file), stamp(file))


@st.cache_data(max_entries=16, show_spinner=False)
def _json_file(file: str, key: tuple) -> dict | None:
    path = Path(file)
    return json.loads(path.read_text()) if path.exists() else None


def report_png(ws: Workspace, name: str) -> bytes | None:
    """The bytes of reports/<name> (a PNG `curate eval` wrote), or None when absent."""
    file = ws.reports_dir / Path(name).name  # a bare file name: nothing outside reports/ is read
    return _report_png(str(file), stamp(file))


@st.cache_data(max_entries=16, show_spinner=False)
def _report_png(file: str, key: tuple) -> bytes | None:
    path = Path(file)
    return path.read_bytes() if path.exists() else None


def thumbnail(ws: Workspace, image_id: int, size: int = thumbnails.THUMB_SIZE) -> bytes:
    """PNG thumbnail of manifest id `image_id`, read only from inside the image root."""
    rel = str(manifest(ws)["path"].iloc[int(image_id)])
    return _thumbnail(str(ws.root), rel, size, stamp(ws.manifest_file))


@st.cache_data(max_entries=5_000, show_spinner=False)  # a 96 px PNG is 3-20 kB
def _thumbnail(root: str, rel: str, size: int, key: tuple) -> bytes:
    try:
        path = resolve_inside(Path(root), rel)
    except PermissionError as err:  # outside the root, or no longer a regular file: never opened
        return thumbnails.placeholder_png(str(err), size)
    return thumbnails.thumbnail_png(path, size)


def upload_query(ws: Workspace, data: bytes, size: int) -> tuple[np.ndarray, bytes]:
    """((D,) embedding, PNG thumbnail fitted to `size`) of an uploaded image's bytes, from one decode
    (curate's safe `load_rgb`, reduced to what the embedding needs)."""
    return _upload_query(str(ws.path), _search_files(ws), stamp(ws.encoder_file), data, size)


@st.cache_data(max_entries=16, show_spinner="Embedding the image…")
def _upload_query(path: str, search_key: tuple, encoder_key: tuple, data: bytes, size: int) -> tuple[np.ndarray, bytes]:
    session = _searcher_with_encoder(path, search_key, encoder_key)
    img = session.decode_for_embedding(io.BytesIO(data))
    return session.embed_image(img), thumbnails.png(thumbnails.fit_box(img, size))


# --- overview / explore --------------------------------------------------------------------------
def workspaces_near(current: str | None) -> list[str]:
    """Workspaces (folders holding workspace.json) beside `current` and in ./workspaces, sorted."""
    folders = [Path.cwd() / "workspaces"] + ([Workspace(current).path.parent] if current else [])
    roots = access.allowed_roots()
    return [w for w in _workspaces_in(tuple(dict.fromkeys(str(f) for f in folders)))
            if roots is None or any(Path(w).is_relative_to(r) for r in roots)]  # only what may be opened


@st.cache_data(ttl=10, max_entries=16, show_spinner=False)  # short: a run started elsewhere shows up soon
def _workspaces_in(folders: tuple[str, ...]) -> list[str]:
    found = []
    for folder in folders:
        try:
            found += [str(meta.parent.resolve()) for meta in Path(folder).glob("*/workspace.json")]
        except OSError:  # unreadable folder: nothing to offer from it
            continue
    return sorted(set(found))


def _table_files(ws: Workspace) -> tuple[int, ...]:
    return stamp(ws.manifest_file, ws.scores_file, ws.duplicates_file, ws.tags_file, ws.label_issues_file,
                 ws.label_fixes_file)


def hover_sheets(ws: Workspace) -> Sheets | None:
    """The sprite sheets the map's hover previews read (written in the background the first time), None
    without fingerprints."""
    from curate.steps.quality import fingerprints_file

    file = fingerprints_file(ws)
    if not file.exists():
        return None
    return _hover_sheets(str(ws.path), stamp(file, ws.manifest_file))


@st.cache_resource(max_entries=4, show_spinner=False)
def _hover_sheets(path: str, key: tuple) -> Sheets | None:
    from curate.steps.quality import fingerprints_file

    ws = Workspace(path)
    manifest = _manifest(path, stamp(ws.manifest_file))
    sizes = manifest[["width", "height"]].to_numpy(np.float64, na_value=np.nan)
    return prepare_sheets(ws, fingerprints_file(ws), sizes)


def image_table(ws: Workspace) -> pd.DataFrame:
    """The manifest plus scores, duplicate group and tags (`curate.steps.scores.image_table`; shared, read-only)."""
    return _image_table(str(ws.path), _table_files(ws))


@st.cache_resource(max_entries=2, show_spinner="Reading scores, duplicates and tags…")
def _image_table(path: str, key: tuple) -> pd.DataFrame:
    ws = Workspace(path)
    return full_image_table(ws, _manifest(path, stamp(ws.manifest_file)))


def tags(ws: Workspace) -> pd.DataFrame:
    """tags.parquet: one row per (id, tag)."""
    return _tags(str(ws.path), stamp(ws.tags_file))


@st.cache_data(max_entries=4, show_spinner=False)
def _tags(path: str, key: tuple) -> pd.DataFrame:
    return read_tags(Workspace(path))


def tag_counts(ws: Workspace) -> pd.DataFrame:
    """tag, images: one row per tag, most used first."""
    counts = tags(ws)["tag"].value_counts()
    return counts.rename_axis("tag").reset_index(name="images")


def map_xy(ws: Workspace, projection: str) -> np.ndarray:
    """(N, 2) map, NaN rows for images without an embedding: the saved UMAP or t-SNE, or a PCA of the embeddings."""
    if projection == "pca":
        return _pca_map(str(ws.path), stamp(ws.embeddings_file))
    return _projection(str(ws.path), stamp(ws.map_file(projection)), projection)


@st.cache_resource(max_entries=2, show_spinner="Projecting the embeddings (PCA)…")
def _pca_map(path: str, key: tuple) -> np.ndarray:
    ws = Workspace(path)
    ids = indexed_rows(ws)
    out = np.full((len(ws.embeddings()), 2), np.nan, np.float32)
    out[ids] = pca_2d(np.asarray(ws.embeddings())[ids])
    out.setflags(write=False)
    return out


def clusters(ws: Workspace, k: int) -> np.ndarray:
    """(N,) k-means cluster of every id's embedding, -1 for images without one (read-only)."""
    return _clusters(str(ws.path), stamp(ws.embeddings_file), int(k))


@st.cache_resource(max_entries=4, show_spinner="Clustering the embeddings (k-means)…")
def _clusters(path: str, key: tuple, k: int) -> np.ndarray:
    ws = Workspace(path)
    ids = indexed_rows(ws)
    out = np.full(len(ws.embeddings()), -1, np.int64)
    out[ids] = kmeans_clusters(np.asarray(ws.embeddings())[ids], k)
    out.setflags(write=False)
    return out


def explore_chart(ws: Workspace, view: MapView) -> map_figure.MapChart:
    """The Explore map for `view`, rebuilt only when the view or a file it reads changes."""
    map_file = ws.embeddings_file if view.projection == "pca" else ws.map_file(view.projection)
    extra = stamp(ws.embeddings_file) if view.colour == CLUSTER else ()
    if view.colour == SELECTIONS:
        files = sorted(ws.selections_dir.glob("*.parquet"))
        extra = (tuple(f.name for f in files), stamp(*files))
    return _explore_chart(str(ws.path), _table_files(ws) + stamp(map_file), extra, view)


@st.cache_resource(max_entries=8, show_spinner="Drawing the map…")
def _explore_chart(path: str, key: tuple, extra: tuple, view: MapView) -> map_figure.MapChart:
    ws = Workspace(path)
    groups = clusters(ws, view.clusters) if view.colour == CLUSTER else None
    chosen = ({name: ws.selection(name)["id"].to_numpy() for name in ws.selection_names()}
              if view.colour == SELECTIONS else None)
    return chart(image_table(ws), map_xy(ws, view.projection), view, tags(ws), groups, chosen)


# --- search / select / quality -------------------------------------------------------------------
def similar(ws: Workspace, positives: tuple[int, ...] = (), negatives: tuple[int, ...] = (),
            vector: np.ndarray | None = None, mode: str = "mean", negative_weight: float = 1.0,
            k: int = 100) -> pd.DataFrame:
    """The k images most like the positive ids (plus an uploaded image's `vector`) and least like the
    negatives, best first, the query images left out: id, path, label, score, distance
    (`curate.index.query.multi_search`; distance = sqrt(2 - 2 score), exact for a single positive)."""
    return _similar(str(ws.path), _search_files(ws), tuple(int(i) for i in positives),
                    tuple(int(i) for i in negatives), vector, mode, float(negative_weight), int(k))


@st.cache_data(max_entries=32, show_spinner="Searching…")
def _similar(path: str, key: tuple, positives: tuple, negatives: tuple, vector: np.ndarray | None, mode: str,
             negative_weight: float, k: int) -> pd.DataFrame:
    session = _searcher(path, key)
    vectors = session.embeddings
    for i in positives + negatives:
        if not 0 <= i < len(vectors):
            raise ValueError(f"no image with id {i}: ids go from 0 to {len(vectors) - 1}")
        if not vectors[i].any():
            raise ValueError(f"image {i} has no embedding (status: {session.manifest['status'].iloc[i]}): "
                             "leave it out of the query")
    query = vectors[list(positives)]
    if vector is not None:
        query = np.vstack([query, np.asarray(vector, np.float32)[None]])
    scores, ids = multi_search(session.index, vectors, query, vectors[list(negatives)] if negatives else None,
                               k, mode, negative_weight, exclude=positives + negatives)
    rows = session.manifest.iloc[ids]
    return pd.DataFrame({"id": ids, "path": rows["path"].to_numpy(), "label": rows["label"].to_numpy(),
                         "score": scores, "distance": np.sqrt(np.clip(2 - 2 * scores, 0, None))})


def _selection_files(ws: Workspace) -> tuple:
    files = sorted(ws.selections_dir.glob("*.parquet"))
    return tuple(f.name for f in files), stamp(*files)


def selection_preview(ws: Workspace, request: dict) -> dict:
    """`compute_selection` for `request` (SelectionRequest fields, filters as a dict): ids (priority
    order), metrics, request as it would be saved, strategy (the one that ranked them), seconds.
    Re-run when any file it reads changes."""
    key = _search_files(ws) + stamp(ws.tags_file, ws.duplicates_file, ws.sidecar(ws.duplicates_file), ws.scores_file,
                                    ws.label_issues_file, ws.label_fixes_file)
    return _selection_preview(str(ws.path), key + _selection_files(ws), request)


@st.cache_data(max_entries=16, show_spinner="Ranking images…")
def _selection_preview(path: str, key: tuple, request: dict) -> dict:
    req = SelectionRequest(**{**request, "filters": Filters(**request.get("filters", {}))})
    start = time.perf_counter()
    result = compute_selection(Workspace(path), req)
    return {"ids": result.ids, "metrics": result.metrics, "request": result.request, "strategy": result.strategy,
            "seconds": time.perf_counter() - start}


def comparison(ws: Workspace, a: str, b: str) -> dict:
    """`compare_selections` of saved selections a and b (overlap, Jaccard, metrics of each on the same pool)."""
    files = [ws.selections_dir / f"{safe_name(name)}.parquet" for name in (a, b)]
    return _comparison(str(ws.path), _search_files(ws) + stamp(*files), a, b)


@st.cache_data(max_entries=8, show_spinner="Comparing the selections…")
def _comparison(path: str, key: tuple, a: str, b: str) -> dict:
    return compare_selections(Workspace(path), a, b)
