"""The app's pages and its sidebar (workspace picker and folder, basket, tags)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from curate.ui import access, cache, filtering, state, tagging
from curate.ui.gate import SIGN_OUT
from curate.ui.guard import errors_as_messages

PAGES_DIR = Path(__file__).resolve().parent / "pages"
PICK_KEY = "workspace_pick"

# (file, title, icon, url path): one module per page under curate/ui/pages/
PAGES = (
    ("overview_page.py", "Overview", ":material/dashboard:", "overview"),
    ("explore_page.py", "Explore", ":material/scatter_plot:", "explore"),
    ("search_page.py", "Search", ":material/image_search:", "search"),
    ("select_page.py", "Select", ":material/checklist:", "select"),
    ("duplicates_page.py", "Duplicates & quality", ":material/content_copy:", "duplicates"),
    ("labels_page.py", "Label issues", ":material/label_important:", "labels"),
    ("export_page.py", "Export", ":material/download:", "export"),
)


def pages() -> list[st.Page]:
    """`st.Page`s for `st.navigation`, Overview first (the default)."""
    return [st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=url, default=i == 0)
            for i, (file, title, icon, url) in enumerate(PAGES)]


def sidebar() -> None:
    """Workspace picker and folder input, the basket summary and the tags, shown on every page."""
    with st.sidebar:
        workspace_picker()
        basket = state.basket()
        st.caption(f"Basket: **{len(basket):,}** image{'s' if len(basket) != 1 else ''}")
        if basket and st.button("Clear basket", key="sidebar_clear_basket", icon=":material/delete:"):
            state.clear_basket()
            st.rerun()
        ws = state.current_workspace()
        if ws is not None and ws.exists():
            with errors_as_messages():
                st.subheader("Filter")
                filtering.filter_box(ws)
                st.subheader("Tags")
                tagging.tag_list(ws)
                tagging.tag_box(ws, basket, key="sidebar_tag", what="the basket")
        if access.signed_in_at_gate():
            st.link_button("Sign out", SIGN_OUT, icon=":material/logout:")


def workspace_picker() -> None:
    """A list of the workspaces found nearby, and the folder input (the open workspace is its value)."""
    state.apply_next()
    current = str(st.session_state.get(state.OPEN_KEY) or "").strip()
    found = cache.workspaces_near(current or None)
    if found:
        ws = state.current_workspace()
        here = str(ws.path) if ws is not None else None
        st.session_state[PICK_KEY] = here if here in found else None  # follow the folder input
        st.selectbox("Workspace", found, key=PICK_KEY, index=None, placeholder="Pick a workspace…",
                     format_func=lambda p: Path(p).name, on_change=_open_picked,
                     help="Workspaces beside the open one and in ./workspaces.")
    state.seed_input()
    st.text_input("Workspace folder", key=state.WORKSPACE_KEY, placeholder="/path/to/WS", on_change=state.typed,
                  help="A folder made by `curate run IMAGES -w WS` (or from Overview). Press Enter to open it.")
    refused = state.refused_workspace()
    if refused:
        st.error(refused, icon=":material/block:")


def _open_picked() -> None:
    picked = st.session_state.get(PICK_KEY)
    if picked:
        state.open_path(picked)
