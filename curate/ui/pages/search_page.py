"""Search: nearest neighbours of an image of the workspace, a basket image, or an uploaded file."""
from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from curate.data.images import ImageError
from curate.ui import cache, state
from curate.ui.gallery import id_captions, show_grid
from curate.ui.guard import run_page
from curate.ui.thumbnails import thumbnail_png
from curate.workspace import Workspace

SOURCES = ("Image id", "From the basket", "Upload an image")
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
MAX_UPLOAD_MB = 20
MAX_BASKET_CHOICES = 1_000


def render(ws: Workspace) -> None:
    st.title("Search")
    source = st.radio("Query", SOURCES, horizontal=True, key="search_source")
    k = st.slider("Neighbours", 4, 60, 12, step=4, key="search_k")
    query_col, results_col = st.columns([1, 4])
    with query_col:
        query = pick_query(ws, source)
    if query is None:
        return
    session = cache.searcher(ws)
    results = session.search(query, k)
    with results_col:
        show_results(ws, results)


def pick_query(ws: Workspace, source: str):
    """The query the user chose: an id (int), an uploaded image's embedding (array), or None."""
    if source == SOURCES[0]:
        return query_by_id(ws)
    if source == SOURCES[1]:
        return query_from_basket(ws)
    return query_from_upload(ws)


def query_by_id(ws: Workspace) -> int | None:
    table = cache.manifest(ws)
    image_id = int(st.number_input("Image id", 0, len(table) - 1, 0, step=1, key="search_id"))
    show_grid(ws, [image_id], size=160)
    status = str(table["status"].iloc[image_id])
    if status != "ok":
        st.warning(f"Image {image_id} was skipped ({status}), so it has no embedding: pick another id.")
        return None
    return image_id


def query_from_basket(ws: Workspace) -> int | None:
    ids = state.basket()[::-1][:MAX_BASKET_CHOICES]  # newest first; a huge list would slow the page
    if not ids:
        st.info("The basket is empty: add images on the Explore page or from results here.")
        return None
    image_id = int(st.selectbox("Basket image", ids, key="search_basket_id"))
    show_grid(ws, [image_id], size=160)
    return image_id


def query_from_upload(ws: Workspace):
    upload = st.file_uploader("Image file", type=UPLOAD_TYPES, max_upload_size=MAX_UPLOAD_MB, key="search_upload",
                              help=f"Up to {MAX_UPLOAD_MB} MB; decoded safely, never stored.")
    if upload is None:
        st.caption("Upload an image to find the most similar ones in this workspace.")
        return None
    data = upload.getvalue()
    try:
        vector = cache.upload_vector(ws, data)
    except ImageError as err:
        st.error(f"Could not read {upload.name}: {err}. Upload a JPEG, PNG, WebP, BMP, TIFF or GIF image.")
        return None
    st.image(thumbnail_png(io.BytesIO(data), 160), caption=upload.name)
    return vector


def show_results(ws: Workspace, results: pd.DataFrame) -> None:
    left, right = st.columns([3, 1])
    left.subheader(f"{len(results)} nearest images")
    if right.button(f"Add {len(results)} to basket", key="search_add", icon=":material/add_shopping_cart:"):
        added = state.add_to_basket(results["id"])
        st.toast(f"Added {added} new image(s) to the basket.")
        st.rerun()
    captions = [f"{c} · d={d:.3f}" for c, d in zip(id_captions(ws, results["id"]), results["distance"])]
    show_grid(ws, results["id"], captions, size=128)
    with st.expander("As a table"):
        st.dataframe(results, hide_index=True, column_config={
            "similarity": st.column_config.NumberColumn(format="%.3f"),
            "distance": st.column_config.NumberColumn(format="%.3f")})


if __name__ == "__main__":
    run_page(render)
