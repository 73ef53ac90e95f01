"""`curate embed` (second half): the FAISS index over the embedded rows (the 2-D map: curate.steps.map)."""
from __future__ import annotations

import numpy as np

from curate.clock import now
from curate.generations import generation, inputs_of
from curate.index import build_index, save_index
from curate.index.plan import DEFAULT_MEMORY, plan_index
from curate.index.tune import RECALL_TARGET, tune_nprobe
from curate.progress import Progress
from curate.workspace import Workspace

ROWS_AT_A_TIME = 65_536  # embeddings read from disk in blocks: 10M x 512 floats never sit in memory at once


def indexed_rows(ws: Workspace) -> np.ndarray:
    """Ids with an embedding (non-zero rows)."""
    x = ws.embeddings()
    return np.concatenate([start + np.flatnonzero(np.any(x[start:start + ROWS_AT_A_TIME] != 0, axis=1))
                           for start in range(0, len(x), ROWS_AT_A_TIME)] or [np.zeros(0, np.int64)])


def embeddings_generation(ws: Workspace) -> str | None:
    """Which embedding run wrote embeddings.npy (`curate.generations`); None if unknown."""
    return generation(ws.embeddings_file)


def build_workspace_index(ws: Workspace, factory: str | None = None, memory: int = DEFAULT_MEMORY,
                          recall: float = RECALL_TARGET, progress: Progress | None = None) -> dict:
    """Index the embedded rows with the index `plan_index` picks for their number, dimension and the
    `memory` budget (bytes), its nprobe tuned to `recall` (recall@10 against exact search, measured on
    a sample of the vectors). index.json records the plan, the measured recall and the embeddings it
    was built from (`embeddings`), so a reader can tell an index that lags behind embeddings.npy."""
    inputs = inputs_of(ws.path, [ws.embeddings_file.name])
    vectors = ws.embeddings()  # a memmap: read in blocks by the build
    ids = indexed_rows(ws)
    if not len(ids):
        raise ValueError(f"no embedded images in {ws.path}: run `curate embed` first")
    plan = plan_index(len(ids), vectors.shape[1], memory)
    factory = factory or plan.factory
    index, sidecar = build_index(vectors, ids, factory, rows=ids, progress=progress)
    sidecar.update({"plan": plan.reason if factory == plan.factory else "given", "memory_budget": int(memory)})
    if "IVF" in factory:
        sidecar = tune_nprobe(index, vectors, ids, ids, sidecar, recall, progress=progress)
    else:
        sidecar.update({"recall_at_10": 1.0, "recall_target": recall, "reached": True})
    save_index(index, {**sidecar, "embeddings": inputs[ws.embeddings_file.name], "created": now()}, ws.index_file,
               inputs)
    return sidecar
