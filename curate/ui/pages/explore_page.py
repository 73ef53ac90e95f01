"""Explore: the 2-D map of all images, coloured and filtered by what the workspace knows about them
(labels, clusters, scores, quality flags, duplicates, tags, selections); lasso, box or click points
to see them, tag them, collect them in the basket."""
from __future__ import annotations

import zlib

import numpy as np
import streamlit as st

from curate.ui import cache, filtering, state, tagging
from curate.ui.gallery import MAX_GRID, id_captions, show_grid, show_more_note
from curate.ui.guard import errors_as_messages, run_page
from curate.ui.hover import hover_previews
from curate.ui.item_view import show_item
from curate.ui.kinds import NAMES, kind_switch, of_kind_ids
from curate.ui.map_figure import mapped_ids
from curate.ui.map_view import (BASKET, CLUSTER, COLUMN, DUPLICATE, LABEL, QUALITY, RANGE_COLUMNS, SELECTIONS, TAG,
                                MapView, has_scores, hideable_flags, map_choices, map_label, metadata_columns,
                                quality_flags, score_bounds)
from curate.ui.progress import run_step
from curate.workspace import Workspace

SCORES = ("uniqueness", "typicality", "outlier")
OPTIONS = {LABEL: "label", CLUSTER: "k-means cluster", "uniqueness": "uniqueness", "typicality": "typicality",
           "outlier": "outlier", QUALITY: "quality flag", DUPLICATE: "duplicate group", TAG: "tag",
           SELECTIONS: "saved selections", BASKET: "in the basket"}
FILTER_KEYS = ("explore_f_labels", "explore_f_flags", "explore_f_tags", "explore_f_skip_tags")


def render(ws: Workspace) -> None:
    st.title("Explore")
    kind = kind_switch(ws)
    projections = map_choices(ws)
    if not projections:
        st.warning(f"No map yet: build one with `curate run IMAGES -w {ws.path}` (or start a run from Overview).")
        return
    table = cache.image_table(ws)
    left, mid, right = st.columns([1, 2, 1])
    projection = left.selectbox("Map", projections, format_func=lambda p: map_label(ws, p), key="explore_projection",
                                help="The map saved by `curate run` (UMAP, or PCA for a small set); t-SNE: the SSL "
                                     "literature's view (`curate map --method tsne`, or computed here); PCA: the two "
                                     "main axes of the embeddings.")
    if projection == "tsne" and not ws.tsne_file.exists():
        tsne_panel(ws)
        projection = projections[0] if projections[0] != "tsne" else "pca"  # until it is computed
    colour = mid.selectbox("Colour by", colour_options(ws, table), format_func=describe_option, key="explore_colour",
                           help="What the workspace knows about each image; scores, quality flags and duplicates "
                                "can be computed here when missing. EXIF and --metadata columns too: numbers and "
                                "times on a colour bar, other values one colour each, counted in the legend.")
    k = int(right.number_input("Clusters (k)", 2, 100, 10, key="explore_k")) if colour == CLUSTER else 10
    missing = missing_step(ws, table, colour)
    if missing:
        compute_panel(ws, missing)
        colour = LABEL  # until the step has run
    members = members_of(ws, colour)
    view = MapView(projection=projection, colour=colour, clusters=k, members=members,
                   member_name=describe_option(colour) if colour == BASKET or colour.startswith("selection:") else "",
                   kind=kind, where=filtering.active(), **filter_form(ws, table))
    map_panel(ws, view)
    st.divider()
    basket_panel(ws, kind)


def colour_options(ws: Workspace, table) -> list[str]:
    return (list(OPTIONS) + [f"selection:{name}" for name in ws.selection_names()]
            + [COLUMN + c for c in metadata_columns(ws, table)])


def describe_option(option: str) -> str:
    if option in OPTIONS:
        return OPTIONS[option]
    if option.startswith(COLUMN):
        return f"column {option[len(COLUMN):]}"
    return f"in selection “{option.split(':', 1)[1]}”"


def members_of(ws: Workspace, option: str) -> tuple[int, ...]:
    if option == BASKET:
        return tuple(state.basket())
    if option.startswith("selection:"):
        return tuple(int(i) for i in cache.selection(ws, option.split(":", 1)[1])["id"])
    return ()


def missing_step(ws: Workspace, table, colour: str) -> str | None:
    """The step that writes what `colour` needs, when it has not run yet."""
    if colour in SCORES and not has_scores(table):
        return "scores"
    if colour == QUALITY and not quality_flags(table):
        return "quality"
    if colour == DUPLICATE and cache.duplicates(ws) is None:
        return "dedup"
    return None


STEPS = {  # declared step (curate.pipeline): (what is missing, button, what the progress bar says)
    "scores": ("No uniqueness / typicality / outlier scores yet.", "Compute scores",
               "Scoring every image against its neighbours…"),
    "quality": ("No quality flags (dark, blurry, ...) yet.", "Run quality checks", "Checking image quality…"),
    "dedup": ("No duplicate scan yet (`curate dedup` makes one).", "Find duplicates", "Looking for duplicates…"),
}


def compute_panel(ws: Workspace, step: str) -> None:
    """Say what is missing (the map is coloured by label meanwhile) and offer to compute it."""
    what, label, doing = STEPS[step]
    left, right = st.columns([3, 1])
    left.info(f"{what} The map is coloured by label until then.", icon=":material/info:")
    if right.button(label, key=f"explore_compute_{step}", type="primary"):
        with errors_as_messages():
            run_step(ws, step, doing)
            st.rerun()


def tsne_panel(ws: Workspace) -> None:
    """No t-SNE map yet: say so and offer to compute it (a fit on up to 20,000 images; about a minute per 5,000)."""
    left, right = st.columns([3, 1])
    left.info("No t-SNE map yet (`curate map --method tsne` makes one). The map below is the "
              f"{map_label(ws, 'umap') if ws.projection_file.exists() else 'PCA'} until then.", icon=":material/info:")
    if right.button("Compute t-SNE map", key="explore_compute_tsne", type="primary"):
        with errors_as_messages():
            run_step(ws, "tsne", "Fitting t-SNE to the embeddings…")
            st.rerun()


def filter_form(ws: Workspace, table) -> dict:
    """Labels, flags, tags and score ranges to keep; applied together by one button (no rerun per click)."""
    ok = table["status"].astype(str) == "ok"
    options = {"explore_f_labels": sorted(table.loc[ok, "label"].dropna().astype(str).unique()),
               "explore_f_flags": hideable_flags(table),
               "explore_f_tags": cache.tag_counts(ws)["tag"].tolist()}
    options["explore_f_skip_tags"] = options["explore_f_tags"]
    for key in FILTER_KEYS:  # drop stale choices (a tag removed since) before the widget checks them
        if key in st.session_state and any(v not in options[key] for v in st.session_state[key]):
            st.session_state[key] = [v for v in st.session_state[key] if v in options[key]]
    bounds = {c: b for c in RANGE_COLUMNS if (b := score_bounds(table, c)) is not None}
    active = any(st.session_state.get(k) for k in FILTER_KEYS) or any(
        tuple(st.session_state.get(f"explore_f_{c}", b)) != b for c, b in bounds.items())
    with st.expander("Filters" + (" (on)" if active else ""), expanded=active, icon=":material/filter_alt:"):
        with st.form("explore_filters", border=False):
            left, right = st.columns(2)
            labels = left.multiselect("Labels", options["explore_f_labels"], key="explore_f_labels",
                                      placeholder="all labels")
            flags = right.multiselect("Hide images flagged", options["explore_f_flags"], key="explore_f_flags",
                                      placeholder="hide none", help="Quality flags (after the quality checks), "
                                      "`outlier` (after scoring) and `duplicate` (non-keepers of duplicate groups).")
            tags = left.multiselect("Only images tagged", options["explore_f_tags"], key="explore_f_tags",
                                    placeholder="any or no tag")
            skip_tags = right.multiselect("Hide images tagged", options["explore_f_skip_tags"],
                                          key="explore_f_skip_tags", placeholder="hide none")
            ranges = []
            for column, (low, high) in bounds.items():
                key = f"explore_f_{column}"
                value = st.session_state.get(key)
                if value is not None and not (low <= value[0] <= value[1] <= high):
                    del st.session_state[key]  # the scores were recomputed: the old range may not fit
                chosen = st.slider(f"{column} between", low, high, (low, high), step=0.01, key=key)
                if tuple(chosen) != (low, high):
                    ranges.append((column, float(chosen[0]), float(chosen[1])))
            if not bounds:
                st.caption("Score ranges appear here once the images are scored (colour by uniqueness to do it).")
            st.form_submit_button("Apply filters", key="explore_f_apply", icon=":material/filter_alt:")
    return {"labels": tuple(labels), "skip_flags": tuple(flags), "tags": tuple(tags), "skip_tags": tuple(skip_tags),
            "ranges": tuple(ranges)}


@st.fragment
def map_panel(ws: Workspace, view: MapView) -> None:
    """The scatter and what is selected on it; a new lasso or click reruns only this fragment."""
    with errors_as_messages():
        chart = cache.explore_chart(ws, view)
        shown = chart.shown
        total = len(of_kind_ids(ws, mapped_ids(cache.map_xy(ws, view.projection)), view.kind))
        hidden = f" ({total - shown:,} hidden by the filters)" if shown < total else ""
        thinned = (f" {chart.drawn:,} of them are drawn, an even share of every group: filters draw the rest, and a "
                   "lasso or box takes every image inside it.") if chart.drawn < shown else ""
        items = NAMES.get(view.kind, "images")
        st.caption(f"{shown:,} of {total:,} {items} on the map{hidden}.{thinned} Drag a lasso (or pick box select in "
                   "the chart's toolbar) or click a point to select; double-click to reset.")
        key = f"explore_map_{zlib.crc32(repr(view).encode()):08x}"  # a new view starts with no stale selection
        event = st.plotly_chart(chart.figure, key=key, on_select="rerun", selection_mode=("points", "box", "lasso"),
                                config={"displaylogo": False, "scrollZoom": True})
        sheets = cache.hover_sheets(ws)
        if sheets:
            hover_previews(sheets.url)  # the image under the pointer
            if not sheets.ready:
                st.caption("Preparing the images shown on hover: points show theirs as their thumbnails are ready.")
        else:
            st.caption(f"Hovering a point shows its image once `curate quality -w {ws.path}` has made thumbnails.")
        selected_panel(ws, chart.ids_selected(dict(event.selection) if event else {}))


def selected_panel(ws: Workspace, ids: list[int]) -> None:
    if not ids:
        st.info("Nothing selected yet: lasso a region of the map, or click a point.", icon=":material/gesture:")
        return
    in_basket = set(state.basket()).intersection(ids)
    left, mid, right = st.columns([2, 1, 1])
    left.subheader(f"{len(ids):,} selected")
    if mid.button(f"Add {len(ids):,} to basket", key="explore_add", icon=":material/add_shopping_cart:",
                  type="primary"):
        added = state.add_to_basket(ids)
        st.toast(f"Added {added:,} new image(s) to the basket.")
        st.rerun(scope="app")  # the sidebar's basket count lives outside this fragment
    if in_basket and right.button(f"Remove {len(in_basket):,} from basket", key="explore_unbasket",
                                  icon=":material/remove_shopping_cart:"):
        state.remove_from_basket(in_basket)
        st.rerun(scope="app")
    sample = np.asarray(ids)[np.linspace(0, len(ids) - 1, min(len(ids), MAX_GRID)).astype(int)]
    shown = show_grid(ws, sample, limit=MAX_GRID)  # evenly spread over the selection, not just its first trace
    show_more_note(shown, len(ids))
    if len(ids) == 1:  # a clicked point: an object's parent and box, a frame's video strip
        show_item(ws, ids[0])
    tagging.tag_box(ws, ids, key="explore_tag", what=f"the {len(ids):,} selected")


def basket_panel(ws: Workspace, kind: str) -> None:
    ids = of_kind_ids(ws, state.basket(), kind)
    left, right = st.columns([3, 1])
    left.subheader(f"Basket · {len(ids):,} images")
    if not ids:
        st.caption("Empty: add images from a map selection or from search results.")
        return
    if right.button("Clear basket", key="explore_clear", icon=":material/delete:"):
        state.clear_basket()
        st.rerun()
    newest = [int(i) for i in ids[::-1]][:MAX_GRID]
    shown = show_grid(ws, newest, limit=MAX_GRID)
    show_more_note(shown, len(ids))
    captions = dict(zip(newest, id_captions(ws, newest)))
    if any(i not in captions for i in st.session_state.get("explore_remove_ids", [])):  # removed or scrolled off
        st.session_state["explore_remove_ids"] = [i for i in st.session_state["explore_remove_ids"] if i in captions]
    with st.form("explore_basket_remove", border=False):
        drop = st.multiselect("Remove from the basket", newest, format_func=captions.get, key="explore_remove_ids",
                              placeholder="pick images shown above")
        remove = st.form_submit_button("Remove from basket", key="explore_remove", icon=":material/remove:")
    if remove and drop:
        removed = state.remove_from_basket(drop)
        st.toast(f"Removed {removed:,} image(s) from the basket.")
        st.rerun()


if __name__ == "__main__":
    run_page(render)
