"""`curate embed` (second half) and `curate run`: the FAISS index and the 2-D map."""
from __future__ import annotations

import numpy as np

from curate import storage
from curate.index import build_index, save_index
from curate.project import project_2d
from curate.workspace import Workspace, now


def indexed_rows(ws: Workspace) -> np.ndarray:
    """Ids with an embedding (non-zero rows)."""
    return np.flatnonzero(np.any(ws.embeddings() != 0, axis=1))


def embeddings_generation(ws: Workspace) -> str | None:
    """Which embedding run wrote embeddings.npy (its model and time, from the sidecar); None if unknown."""
    file = ws.sidecar(ws.embeddings_file)
    if not file.exists():
        return None
    meta = storage.read_json(file)
    return f"{meta.get('model')}@{meta.get('created')}"


def build_workspace_index(ws: Workspace, factory: str | None = None) -> dict:
    """Index the embedded rows; index.json names the embeddings it was built from (`embeddings`), so a
    reader can tell an index that lags behind a newer embeddings.npy."""
    generation = embeddings_generation(ws)
    vectors = np.asarray(ws.embeddings())
    ids = indexed_rows(ws)
    index, sidecar = build_index(vectors[ids], ids, factory)
    save_index(index, {**sidecar, "embeddings": generation, "created": now()}, ws.index_file)
    return sidecar


def build_projection(ws: Workspace, method: str = "auto", seed: int = 0) -> np.ndarray:
    """(N, 2) map; rows without an embedding are NaN (the app leaves them out)."""
    vectors = np.asarray(ws.embeddings())
    ids = indexed_rows(ws)
    out = np.full((len(vectors), 2), np.nan, dtype=np.float32)
    out[ids] = project_2d(vectors[ids], method, seed)
    storage.write_npy(ws.projection_file, out)
    storage.write_json(ws.sidecar(ws.projection_file), {"method": method, "seed": seed, "created": now()})
    return out

