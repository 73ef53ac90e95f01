"""Search: images like one image, like several at once ("more like these"), or like an uploaded
file, optionally unlike some negatives; a similarity histogram picks a cut-off for the basket."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from curate.data.images import ImageError
from curate.index.query import MODES
from curate.ui import cache, charts, filtering, state
from curate.ui.gallery import SEARCH_GOTO_KEY, id_captions, show_grid
from curate.ui.guard import run_page
from curate.ui.item_view import show_item
from curate.ui.kinds import NAMES, choose, kind_of, kind_switch
from curate.workspace import Workspace

SOURCES = ("Image id", "Several images", "Upload an image")
MODE_HELP = {"mean": "like all of them (their mean)", "max": "like any of them (best match)"}
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
MAX_UPLOAD_MB = 20
UPLOAD_THUMB = 160  # px
BOX_PREVIEW = 640  # px: the uploaded image as shown to drag a box on
BOX_FIELDS = ("x0", "y0", "x1", "y1")
MAX_BASKET_CHOICES = 1_000
DEPTHS = (200, 1_000, 5_000)  # results scored for the histogram: the grid shows the first few


@dataclass(frozen=True)
class Query:
    positives: tuple[int, ...] = ()
    vector: np.ndarray | None = None  # an uploaded image's embedding

    @property
    def size(self) -> int:
        return len(self.positives) + (self.vector is not None)


def render(ws: Workspace) -> None:
    st.title("Search")
    take_goto(ws)
    kind = kind_switch(ws)  # which items the results are: by default the query item's kind
    source = st.radio("Query", SOURCES, horizontal=True, key="search_source")
    query_col, results_col = st.columns([2, 5] if source == SOURCES[2] else [1, 4])  # room to drag a box on
    with query_col:
        query = pick_query(ws, source)
        negatives = pick_negatives(ws)
        mode = st.radio("With several query images, find images", MODES, format_func=MODE_HELP.get,
                        key="search_mode", disabled=query is None or query.size < 2,
                        help="mean: the direction the query images share; max: each result's best match among them.")
        weight = st.slider("Negative weight", 0.0, 2.0, 1.0, 0.1, key="search_neg_weight", disabled=not negatives,
                           help="How hard images like a negative are pushed down: score = similarity to the query "
                                "- weight x the highest similarity to a negative.")
    if query is None:
        return
    with results_col:
        cols = st.columns(2)
        k = cols[0].slider("Neighbours shown", 4, 60, 12, step=4, key="search_k")
        depth = cols[1].select_slider("Results scored (histogram)", DEPTHS, 1_000, key="search_depth")
        results = cache.similar(ws, query.positives, tuple(negatives), query.vector, mode, weight, max(k, depth),
                                kind, filtering.active())
        single = query.size == 1 and not negatives  # only then is the score a plain cosine to one image
        show_results(ws, results.iloc[:k], single, kind)
        cutoff_picker(results, k)
    if source == SOURCES[0]:
        show_item(ws, query.positives[0])  # an object's parent and box, a frame's video strip


def take_goto(ws: Workspace) -> None:
    """An image id sent by a grid's "Search similar" becomes the query, and its kind the results' kind
    (set before the widgets exist); a first visit follows the kind of the id shown."""
    image_id = st.session_state.pop(SEARCH_GOTO_KEY, None)
    if image_id is not None:
        st.session_state["search_source"] = SOURCES[0]
        st.session_state["search_id"] = int(image_id)
    if image_id is not None or "search_kind_seen" not in st.session_state:
        st.session_state["search_kind_seen"] = True
        follow_query_kind(ws)


def follow_query_kind(ws: Workspace) -> None:
    """The id input's on_change: a search by an object returns objects, by a frame frames."""
    image_id = int(st.session_state.get("search_id", 0) or 0)
    if 0 <= image_id < len(cache.manifest(ws)) and (kind := kind_of(ws, image_id)) in NAMES:
        choose(kind)


def pick_query(ws: Workspace, source: str) -> Query | None:
    if source == SOURCES[0]:
        return query_by_id(ws)
    if source == SOURCES[1]:
        return query_from_several(ws)
    return query_from_upload(ws)


def query_by_id(ws: Workspace) -> Query | None:
    table = cache.manifest(ws)
    image_id = int(st.number_input("Image id", 0, len(table) - 1, step=1, key="search_id",  # starts at 0
                                   on_change=follow_query_kind, args=(ws,)))
    show_grid(ws, [image_id], size=160, search=False)
    status = str(table["status"].iloc[image_id])
    if status != "ok":
        st.warning(f"Image {image_id} was skipped ({status}), so it has no embedding: pick another id.")
        return None
    if kind_of(ws, image_id) not in NAMES:
        st.warning(f"#{image_id} is a video, which is not embedded itself: pick one of its frames.")
        return None
    return Query((image_id,))


def query_from_several(ws: Workspace) -> Query | None:
    basket = state.basket()[::-1][:MAX_BASKET_CHOICES]  # newest first; a huge list would slow the page
    chosen = st.multiselect("From the basket", basket, default=basket, key="search_pos_basket",
                            placeholder="the basket is empty" if not basket else "pick basket images",
                            disabled=not basket)
    typed = ids_input(ws, "Image ids", "search_pos_ids")
    positives = tuple(dict.fromkeys([*chosen, *typed]))
    if not positives:
        st.info("Pick images from the basket or type their ids: the results are like these.")
        return None
    show_grid(ws, positives, size=64, limit=24, search=False)
    return Query(positives)


def query_from_upload(ws: Workspace) -> Query | None:
    upload = st.file_uploader("Image file", type=UPLOAD_TYPES, max_upload_size=MAX_UPLOAD_MB, key="search_upload",
                              help=f"Up to {MAX_UPLOAD_MB} MB; decoded safely, never stored.")
    if upload is None:
        st.caption("Upload an image to find the most similar ones in this workspace.")
        return None
    data = upload.getvalue()
    if len(data) > MAX_UPLOAD_MB * 2**20:
        st.error(f"{upload.name} is larger than {MAX_UPLOAD_MB} MB: upload a smaller image.")
        return None
    try:
        box = upload_box(data)
        vector, thumb = cache.upload_query(ws, data, UPLOAD_THUMB, box)
    except ImageError as err:
        st.error(f"Could not read {upload.name}: {err}. Upload a JPEG, PNG, WebP, BMP, TIFF or GIF image.")
        return None
    st.image(thumb, caption=upload.name if box is None else f"{upload.name}, box {', '.join(f'{v:.0f}' for v in box)}")
    return Query(vector=vector)


def upload_box(data: bytes) -> tuple[float, float, float, float] | None:
    """A box (x0, y0, x1, y1 in the uploaded image's pixels) to search by, or None for the whole image: dragged
    on the image, or typed."""
    with st.expander("Search by a box", icon=":material/crop:"):
        preview, size = cache.upload_preview(data, BOX_PREVIEW)
        st.caption("Drag a box on the image (or type its pixels); the box is cropped with a little context, as "
                   "objects are. Set x1 to 0 to search by the whole image again.")
        typed = [st.session_state.get(f"search_box_{name}", 0) for name in BOX_FIELDS]
        outline = typed if typed[2] > typed[0] and typed[3] > typed[1] else None
        event = st.plotly_chart(charts.box_canvas(preview, size, outline), key="search_box_draw", on_select="rerun",
                                selection_mode="box", config={"displayModeBar": False})
        drawn = charts.selected_box(event.selection if event else None, size)
        if drawn is not None and drawn != st.session_state.get("search_box_drawn"):
            st.session_state["search_box_drawn"] = drawn  # a new drag fills the inputs; typing then refines it
            for name, value in zip(BOX_FIELDS, drawn):
                st.session_state[f"search_box_{name}"] = value
        cols = st.columns(2)
        values = [cols[i % 2].number_input(name, 0, 100_000, 0, key=f"search_box_{name}")
                  for i, name in enumerate(BOX_FIELDS)]
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def pick_negatives(ws: Workspace) -> list[int]:
    return ids_input(ws, "Unlike these ids (optional)", "search_neg",
                     help_text="Negatives: images like these are pushed down the results.")


def ids_input(ws: Workspace, label: str, key: str, help_text: str | None = None) -> list[int]:
    """Ids typed as text (`7, 12 40`): valid ones returned, anything else named in a warning."""
    text = st.text_input(label, key=key, placeholder="e.g. 7, 12, 40", help=help_text)
    tokens = [t for t in re.split(r"[\s,;]+", text) if t]
    n = len(cache.manifest(ws))
    ids = [int(t) for t in tokens if t.isdigit() and int(t) < n]
    bad = [t for t in tokens if not (t.isdigit() and int(t) < n)]
    if bad:
        st.warning(f"Ignored {', '.join(bad[:5])}{'…' if len(bad) > 5 else ''}: ids are whole numbers "
                   f"from 0 to {n - 1:,}.")
    return list(dict.fromkeys(ids))


def show_results(ws: Workspace, results: pd.DataFrame, single: bool, kind: str = "image") -> None:
    left, right = st.columns([3, 1])
    left.subheader(f"{len(results)} nearest {NAMES.get(kind, 'images')}")
    if right.button(f"Add {len(results)} to basket", key="search_add", icon=":material/add_shopping_cart:"):
        added = state.add_to_basket(results["id"])
        st.toast(f"Added {added} new image(s) to the basket.")
        st.rerun()
    values = [f"d={d:.3f}" for d in results["distance"]] if single else [f"s={s:.3f}" for s in results["similarity"]]
    captions = [f"{c} · {v}" for c, v in zip(id_captions(ws, results["id"]), values)]
    show_grid(ws, results["id"], captions, size=128, key="search_results")
    if not single:
        st.caption("s: similarity to the query images combined (minus the penalty for negatives).")
    with st.expander("As a table"):
        st.dataframe(results, hide_index=True, column_config={
            "similarity": st.column_config.NumberColumn(format="%.3f"),
            "distance": st.column_config.NumberColumn(format="%.3f")})


@st.fragment
def cutoff_picker(results: pd.DataFrame, k: int) -> None:
    """Histogram of the scored results and a cut-off slider: every result above it can go to the basket."""
    scores = results["similarity"].to_numpy(np.float64)
    if len(scores) < 2 or scores.max() - scores.min() < 1e-6:
        return
    st.subheader("Pick a cut-off")
    low, high = float(np.floor(scores.min() * 1000) / 1000), float(np.ceil(scores.max() * 1000) / 1000)
    default = float(np.floor(scores[min(k, len(scores)) - 1] * 1000) / 1000)
    cut = st.slider("Similarity cut-off", low, high, min(max(default, low), high), step=0.001, format="%.3f",
                    key="search_cut", help=f"The {len(scores):,} best results are scored; those at or above "
                                           "the cut-off can be added to the basket at once.")
    st.plotly_chart(charts.score_histogram(scores, cut), key="search_hist")
    above = results.loc[results["similarity"] >= cut, "id"]
    if st.button(f"Add the {len(above):,} results ≥ {cut:.3f} to the basket", key="search_add_cut",
                 icon=":material/playlist_add:", disabled=not len(above)):
        added = state.add_to_basket(above)
        st.toast(f"Added {added:,} new image(s) to the basket.")
        st.rerun()


if __name__ == "__main__":
    run_page(render)
