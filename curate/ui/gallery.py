"""Thumbnail grids: one `st.image` element per grid (a single element renders fast), each with a
"search similar" action that opens the Search page on any image of the grid."""
from __future__ import annotations

import sys
import zlib
from typing import Sequence

import numpy as np
import streamlit as st

from curate.ui import cache, state
from curate.ui.navigation import PAGES_DIR
from curate.ui.thumbnails import THUMB_SIZE
from curate.workspace import Workspace

MAX_GRID = 60  # thumbnails drawn at once: more would slow the page without helping the eye
SEARCH_PAGE = PAGES_DIR / "search_page.py"
SEARCH_GOTO_KEY = "search_goto"  # an id handed to the Search page, which takes it as its query


def show_grid(ws: Workspace, ids: Sequence[int], captions: Sequence[str] | None = None,
              limit: int = MAX_GRID, size: int = THUMB_SIZE, key: str | None = None, search: bool = True) -> int:
    """Draw the first `limit` images of `ids` as a wrapping grid; returns how many were drawn.

    With `search`, a popover under the grid picks one of its images to open the Search page on, or to
    put in the basket. `key` names the popover's widgets; by default it is derived from the calling line
    and the ids shown, so only grids drawn in a loop need one.
    """
    ids = [int(i) for i in ids][:limit]
    if not ids:
        return 0
    captions = list(captions)[:limit] if captions is not None else id_captions(ws, ids)
    st.image([cache.thumbnail(ws, i, size) for i in ids], caption=captions, width=size)
    if search:
        search_action(ids, captions, key or _default_key(ids, sys._getframe(1)))
    return len(ids)


def search_action(ids: list[int], captions: list[str], key: str) -> None:
    """A popover to pick one of `ids` and search for images like it (or add it to the basket)."""
    label = dict(zip(ids, captions))
    with st.popover("Search similar", icon=":material/image_search:"):
        chosen = st.selectbox("Image", ids, format_func=lambda i: label.get(i, f"#{i}"), key=f"{key}_pick")
        if st.button("Search for similar images", key=f"{key}_search", icon=":material/search:"):
            search_similar(int(chosen))
        if st.button("Add to the basket", key=f"{key}_basket", icon=":material/add_shopping_cart:"):
            added = state.add_to_basket([int(chosen)])
            st.toast(f"#{int(chosen)} is in the basket." if added else f"#{int(chosen)} was in the basket already.")
            st.rerun()


def _default_key(ids: list[int], caller) -> str:
    """A widget key unique to the line that drew the grid and the ids it shows."""
    where = f"{caller.f_code.co_filename}:{caller.f_lineno}".encode()
    return f"grid_{zlib.crc32(where):08x}_{zlib.crc32(np.asarray(ids, np.int64).tobytes()):08x}"


def search_similar(image_id: int) -> None:
    """Open the Search page with `image_id` as its query."""
    st.session_state[SEARCH_GOTO_KEY] = int(image_id)
    st.switch_page(SEARCH_PAGE)


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
