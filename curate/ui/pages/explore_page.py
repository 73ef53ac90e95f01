"""Explore: the 2-D map of all images; lasso or box a region to see it and collect it in the basket."""
from __future__ import annotations

import numpy as np
import streamlit as st

from curate.ui import cache, state
from curate.ui.gallery import MAX_GRID, show_grid, show_more_note
from curate.ui.guard import errors_as_messages, run_page
from curate.workspace import Workspace

LABEL = "label"
BASKET = "basket"


def render(ws: Workspace) -> None:
    st.title("Explore")
    colour_by = st.selectbox("Colour by", colour_options(ws), format_func=describe_option, key="explore_colour",
                             help="Labels (class sub-folders), or whether an image belongs to a selection.")
    map_panel(ws, colour_by)
    st.divider()
    basket_panel(ws)


def colour_options(ws: Workspace) -> list[str]:
    return [LABEL, BASKET] + [f"selection:{name}" for name in ws.selection_names()]


def describe_option(option: str) -> str:
    if option == LABEL:
        return "label"
    if option == BASKET:
        return "in the basket"
    return f"in selection “{option.split(':', 1)[1]}”"


def members_of(ws: Workspace, option: str) -> tuple[int, ...]:
    if option == BASKET:
        return tuple(state.basket())
    if option.startswith("selection:"):
        return tuple(int(i) for i in cache.selection(ws, option.split(":", 1)[1])["id"])
    return ()


@st.fragment
def map_panel(ws: Workspace, colour_by: str) -> None:
    """The scatter and what is selected on it; a new lasso reruns only this fragment."""
    with errors_as_messages():
        highlight = None if colour_by == LABEL else describe_option(colour_by)
        chart = cache.map_chart(ws, highlight, members_of(ws, colour_by))
        shown = sum(len(ids) for ids in chart.trace_ids)
        st.caption(f"{shown:,} images on the map. Drag a lasso (or pick box select in the chart's toolbar) "
                   "to select; double-click to reset.")
        event = st.plotly_chart(chart.figure, key="explore_map", on_select="rerun", selection_mode=("lasso", "box"),
                                config={"displaylogo": False, "scrollZoom": True})
        selected_panel(ws, chart.ids_of(event.selection.points if event else []))


def selected_panel(ws: Workspace, ids: list[int]) -> None:
    if not ids:
        st.info("Nothing selected yet: lasso a region of the map.", icon=":material/gesture:")
        return
    left, right = st.columns([3, 1])
    left.subheader(f"{len(ids):,} selected")
    if right.button(f"Add {len(ids):,} to basket", key="explore_add", icon=":material/add_shopping_cart:",
                    type="primary"):
        added = state.add_to_basket(ids)
        st.toast(f"Added {added:,} new image(s) to the basket.")
        st.rerun(scope="app")  # the sidebar's basket count lives outside this fragment
    sample = np.asarray(ids)[np.linspace(0, len(ids) - 1, min(len(ids), MAX_GRID)).astype(int)]
    shown = show_grid(ws, sample, limit=MAX_GRID)  # evenly spread over the selection, not just its first trace
    show_more_note(shown, len(ids))


def basket_panel(ws: Workspace) -> None:
    ids = state.basket()
    left, right = st.columns([3, 1])
    left.subheader(f"Basket · {len(ids):,} images")
    if not ids:
        st.caption("Empty: add images from a map selection or from search results.")
        return
    if right.button("Clear basket", key="explore_clear", icon=":material/delete:"):
        state.clear_basket()
        st.rerun()
    shown = show_grid(ws, np.asarray(ids)[::-1], limit=MAX_GRID)  # newest first
    show_more_note(shown, len(ids))


if __name__ == "__main__":
    run_page(render)
