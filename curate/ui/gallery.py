"""Thumbnail grids: one `st.image` element per grid (a single element renders fast)."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from curate.ui import cache
from curate.ui.thumbnails import THUMB_SIZE
from curate.workspace import Workspace

MAX_GRID = 60  # thumbnails drawn at once: more would slow the page without helping the eye


def show_grid(ws: Workspace, ids: Sequence[int], captions: Sequence[str] | None = None,
              limit: int = MAX_GRID, size: int = THUMB_SIZE) -> int:
    """Draw the first `limit` images of `ids` as a wrapping grid; returns how many were drawn."""
    ids = [int(i) for i in ids][:limit]
    if not ids:
        return 0
    captions = list(captions)[:limit] if captions is not None else id_captions(ws, ids)
    st.image([cache.thumbnail(ws, i, size) for i in ids], caption=captions, width=size)
    return len(ids)


def id_captions(ws: Workspace, ids: Sequence[int]) -> list[str]:
    """`#id · label` for each id (label left out when the image has none)."""
    labels = cache.manifest(ws)["label"]
    out = []
    for i in ids:
        label = labels.iloc[int(i)]
        out.append(f"#{int(i)} · {label}" if isinstance(label, str) else f"#{int(i)}")
    return out


def show_more_note(shown: int, total: int) -> None:
    if total > shown:
        st.caption(f"Showing {shown:,} of {total:,}.")
