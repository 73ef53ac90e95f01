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

from curate.select import select as rank
from curate.session import OpenWorkspace, open_workspace
from curate.steps.index import indexed_rows
from curate.steps.select import selection_metrics
from curate.ui import map_figure, thumbnails
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
def _projection(path: str, key: tuple) -> np.ndarray:
    """(N, 2) float32 map, NaN rows for images without an embedding (read-only)."""
    xy = Workspace(path).projection()
    xy.setflags(write=False)
    return xy


def map_chart(ws: Workspace, highlight: str | None = None, members: tuple[int, ...] = ()) -> map_figure.MapChart:
    """The Explore scatter: coloured by label, or (when `highlight` names a group) by membership of `members`."""
    key = stamp(ws.projection_file, ws.manifest_file)
    return _map_chart(str(ws.path), key, highlight, members)


@st.cache_resource(max_entries=8, show_spinner="Drawing the map…")
def _map_chart(path: str, key: tuple, highlight: str | None, members: tuple[int, ...]) -> map_figure.MapChart:
    ws = Workspace(path)
    xy, table = _projection(path, stamp(ws.projection_file)), _manifest(path, stamp(ws.manifest_file))
    if highlight is None:
        groups = map_figure.groups_by_label(table["label"], xy)
    else:
        groups = map_figure.groups_by_membership(np.asarray(members, dtype=np.int64), xy, highlight)
    return map_figure.scatter(xy, groups)


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


def train_log(ws: Workspace) -> pd.DataFrame:
    """model/train_log.jsonl as a table (step, loss, ...); empty before training."""
    file = ws.model_dir / "train_log.jsonl"
    return _train_log(str(file), stamp(file))


@st.cache_data(max_entries=4, show_spinner=False)
def _train_log(file: str, key: tuple) -> pd.DataFrame:
    path = Path(file)
    if not path.exists():
        return pd.DataFrame()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return pd.DataFrame(rows)


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
    return thumbnails.thumbnail_png(resolve_inside(Path(root), rel), size)


def upload_vector(ws: Workspace, data: bytes) -> np.ndarray:
    """(D,) embedding of an uploaded image's bytes (decoded by curate's safe `load_rgb`)."""
    return _upload_vector(str(ws.path), _search_files(ws), stamp(ws.encoder_file), data)


@st.cache_data(max_entries=16, show_spinner="Embedding the image…")
def _upload_vector(path: str, search_key: tuple, encoder_key: tuple, data: bytes) -> np.ndarray:
    return _searcher_with_encoder(path, search_key, encoder_key).embed_file(io.BytesIO(data))


def ranking(ws: Workspace, strategy: str, n: int, seed: int) -> dict:
    """A selection preview: ids (priority order), coverage radius, pool size, seconds taken."""
    return _ranking(str(ws.path), _search_files(ws), strategy, int(n), int(seed))


@st.cache_data(max_entries=16, show_spinner="Ranking images…")
def _ranking(path: str, key: tuple, strategy: str, n: int, seed: int) -> dict:
    pool = indexed_rows(Workspace(path))  # the same pool `curate select` ranks: ids with an embedding
    vectors = _searcher(path, key).embeddings[pool]
    start = time.perf_counter()
    order = rank(vectors, n, strategy, seed=seed)
    seconds = time.perf_counter() - start
    return {"ids": pool[order], "metrics": selection_metrics(vectors, order), "seconds": seconds}
