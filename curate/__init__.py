"""curate: curate image datasets with self-supervised embeddings.

Stable Python API (DESIGN.md §4):
    curate.select(vectors, n, strategy="kcenter", **params) -> row indices in priority order
    curate.near_duplicates(vectors, threshold) -> list of groups of row indices
    curate.open_workspace(path) -> OpenWorkspace: .manifest, .embeddings, .index (attributes, loaded on first
        use) and .search(query, k=10), query an id, an image file or a vector
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# `select` is bound eagerly: it shares its name with the subpackage curate.select, which would
# otherwise shadow the function once imported. It is light (numpy; torch loads on first k-center).
from curate.select import select  # noqa: E402

# The others are resolved on first use, so `import curate.data...` does not pay for faiss.
_API = {"near_duplicates": "curate.quality.duplicates", "open_workspace": "curate.session"}
__all__ = ["select", *_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
