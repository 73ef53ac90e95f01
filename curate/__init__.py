"""curate: curate image datasets with self-supervised embeddings.

Stable Python API (DESIGN.md §4):
    curate.select(vectors, n, strategy="kcenter", **params) -> row indices in priority order
    curate.near_duplicates(vectors, threshold) -> list of groups of row indices
    curate.open_workspace(path) -> Workspace with manifest(), embeddings(), search(...)
"""
from __future__ import annotations

__version__ = "0.1.0"

from curate.quality.duplicates import near_duplicates
from curate.select import select
from curate.session import open_workspace

__all__ = ["near_duplicates", "open_workspace", "select", "__version__"]
