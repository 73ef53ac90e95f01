"""`curate select`: save a named selection (ids ranked by a strategy) with its metadata."""
from __future__ import annotations

import numpy as np
import pandas as pd

from curate import storage
from curate.select import select as rank
from curate.select.kcenter import coverage_radius
from curate.steps.index import indexed_rows
from curate.workspace import Workspace, now, safe_name


def save_selection(ws: Workspace, name: str, ids: np.ndarray, strategy: str, params: dict, seed: int,
                   scores: np.ndarray | None = None, metrics: dict | None = None) -> pd.DataFrame:
    name = safe_name(name)
    ids = np.asarray(ids, dtype=np.int64)
    table = pd.DataFrame({"id": ids, "rank": np.arange(len(ids), dtype=np.int64),
                          "score": np.asarray(scores if scores is not None else 1 - np.arange(len(ids)) / max(1, len(ids)),
                                              dtype=np.float64)})
    storage.write_parquet(ws.selections_dir / f"{name}.parquet", table)
    storage.write_json(ws.selections_dir / f"{name}.json", {"strategy": strategy, "parameters": params, "seed": seed,
                                                            "n": int(len(ids)), "metrics": metrics or {}, "created": now()})
    return table


def selection_metrics(vectors: np.ndarray, order: np.ndarray) -> dict:
    """Summary figures saved with every selection (vectors: the pool; order: chosen rows)."""
    return {"coverage_radius": coverage_radius(vectors, order), "pool": int(len(vectors))}


def run_selection(ws: Workspace, n: int, strategy: str = "kcenter", name: str | None = None, seed: int = 0,
                  **params) -> pd.DataFrame:
    """Rank n images of the workspace with `strategy` and save them as selection `name`."""
    ids = indexed_rows(ws)
    vectors = np.asarray(ws.embeddings())[ids]
    order = rank(vectors, n, strategy, seed=seed, **params)
    metrics = selection_metrics(vectors, order)
    return save_selection(ws, name or f"{strategy}_{len(order)}", ids[order], strategy, params, seed, metrics=metrics)
