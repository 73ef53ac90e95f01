"""The sidebar's filter: a saved view and a `--where` expression over the manifest's columns (EXIF, metadata,
quality, labels...), applied on Explore, Search and Select. The expression is run by `curate.data.where`;
a mistake is shown under the input and nothing is filtered until it is fixed."""
from __future__ import annotations

import streamlit as st

from curate.data.where import WhereError, combined, read_views, save_view
from curate.ui import cache
from curate.workspace import Workspace

ACTIVE_KEY = "where_active"  # the expression in force (None: no filter), read by the pages
NO_VIEW = "(no view)"


def active() -> str | None:
    """The filter the pages apply: the view and the expression together, once they run."""
    return st.session_state.get(ACTIVE_KEY)


def filter_box(ws: Workspace) -> None:
    """View picker, expression input, match count or error, and saving the expression as a view."""
    views = read_views(ws.views_file)
    view = st.selectbox("View", [NO_VIEW, *views], key="where_view",
                        help="A saved filter (`curate view NAME --where EXPR`).")
    where = st.text_input("Where", key="where_input", placeholder="e.g. camera_model = 'X100V'",
                          help="A filter over the manifest's columns, as `--where` takes it (SQL, run by DuckDB): "
                               "label = 'cat' AND width >= 640, captured >= '2024-06-01', site IN ('a', 'b').")
    expression = combined(where, None if view == NO_VIEW else view, ws.views_file)
    try:
        matched = cache.where_count(ws, expression) if expression else None
    except WhereError as err:
        st.session_state[ACTIVE_KEY] = None
        st.error(str(err))
        return
    st.session_state[ACTIVE_KEY] = expression
    if matched is not None:
        st.caption(f"Filter: **{matched:,}** items match.")
    if where.strip():
        _save_form(ws, where)


def _save_form(ws: Workspace, where: str) -> None:
    with st.popover("Save as a view", icon=":material/bookmark_add:"):
        name = st.text_input("View name", key="where_view_name")
        if st.button("Save view", key="where_save") and name:
            try:
                save_view(ws.views_file, name.strip(), where, cache.manifest(ws))
            except WhereError as err:
                st.error(str(err))
                return
            st.success(f"Saved view “{name.strip()}”.")
