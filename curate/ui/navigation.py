"""The app's pages and its sidebar (workspace folder, basket)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from curate.ui import state

PAGES_DIR = Path(__file__).resolve().parent / "pages"

# (file, title, icon, url path): one module per page under curate/ui/pages/
PAGES = (
    ("overview_page.py", "Overview", ":material/dashboard:", "overview"),
    ("explore_page.py", "Explore", ":material/scatter_plot:", "explore"),
    ("search_page.py", "Search", ":material/image_search:", "search"),
    ("select_page.py", "Select", ":material/checklist:", "select"),
    ("duplicates_page.py", "Duplicates", ":material/content_copy:", "duplicates"),
    ("export_page.py", "Export", ":material/download:", "export"),
)


def pages() -> list[st.Page]:
    """`st.Page`s for `st.navigation`, Overview first (the default)."""
    return [st.Page(PAGES_DIR / file, title=title, icon=icon, url_path=url, default=i == 0)
            for i, (file, title, icon, url) in enumerate(PAGES)]


def sidebar() -> None:
    """Workspace folder input and the basket summary, shown on every page."""
    with st.sidebar:
        st.text_input("Workspace folder", key=state.WORKSPACE_KEY, placeholder="/path/to/WS",
                      help="A folder made by `curate run IMAGES -w WS`. Press Enter to open it.")
        basket = state.basket()
        st.caption(f"Basket: **{len(basket):,}** image{'s' if len(basket) != 1 else ''}")
        if basket and st.button("Clear basket", key="sidebar_clear_basket", icon=":material/delete:"):
            state.clear_basket()
            st.rerun()
