"""curate: curate image datasets with self-supervised embeddings.

Stable Python API (DESIGN.md §4):
    curate.select(vectors, n, strategy="kcenter", **params) -> row indices in priority order
    curate.near_duplicates(vectors, threshold) -> list of groups of row indices
    curate.open_workspace(path) -> Workspace with manifest(), embeddings(), search(...)
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Resolved on first use, so `import curate.data...` does not pay for torch and faiss.
_API = {"select": "curate.select", "near_duplicates": "curate.quality.duplicates", "open_workspace": "curate.session"}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
