"""Select: rank images with a diversity strategy, preview the picks, save them as a named selection."""
from __future__ import annotations

import streamlit as st

from curate.select import STRATEGIES
from curate.steps.select import save_selection
from curate.ui import cache
from curate.ui.gallery import show_grid, show_more_note
from curate.ui.guard import run_page
from curate.workspace import Workspace, safe_name

PREVIEW_KEY = "select_preview"  # {"strategy", "n", "seed"}: small parameters, the ranking itself is cached


def render(ws: Workspace) -> None:
    st.title("Select")
    pool = len(cache.manifest(ws))
    with st.form("select_form"):
        cols = st.columns(3)
        names = STRATEGIES.names()
        strategy = cols[0].selectbox("Strategy", names, index=names.index("kcenter") if "kcenter" in names else 0,
                                     key="select_strategy")
        n = cols[1].number_input("Images (n)", 1, max(1, pool), min(100, pool), step=10, key="select_n")
        seed = cols[2].number_input("Seed", 0, 2**31 - 1, 0, key="select_seed")
        if st.form_submit_button("Preview", type="primary", icon=":material/visibility:"):
            st.session_state[PREVIEW_KEY] = {"strategy": strategy, "n": int(n), "seed": int(seed)}
    params = st.session_state.get(PREVIEW_KEY)
    if params:
        preview(ws, params)
    st.divider()
    list_selections(ws)


def preview(ws: Workspace, params: dict) -> None:
    result = cache.ranking(ws, params["strategy"], params["n"], params["seed"])
    ids = result["ids"]
    st.subheader(f"Preview: {params['strategy']}, {len(ids):,} of {result['metrics']['pool']:,} images")
    cols = st.columns(3)
    cols[0].metric("Coverage radius", f"{result['metrics']['coverage_radius']:.3f}",
                   help="Largest distance from any image to its nearest selected image (lower covers better).")
    all_labels = cache.manifest(ws)["label"]
    covered = all_labels.iloc[ids].nunique()
    cols[1].metric("Labels covered", f"{covered:,} / {all_labels.nunique():,}" if all_labels.notna().any() else "no labels")
    cols[2].metric("Ranking time", f"{result['seconds']:.2f} s")
    save_form(ws, params, result)
    shown = show_grid(ws, ids)
    show_more_note(shown, len(ids))


def save_form(ws: Workspace, params: dict, result: dict) -> None:
    with st.form("select_save"):
        name = st.text_input("Selection name", f"{params['strategy']}_{len(result['ids'])}", key="select_name")
        overwrite = st.checkbox("Replace a selection of the same name", key="select_overwrite")
        if not st.form_submit_button("Save selection", icon=":material/save:"):
            return
    clean = safe_name(name)  # an invalid name raises ValueError: shown as a message
    if clean in ws.selection_names() and not overwrite:
        st.warning(f"A selection named “{clean}” exists: tick “Replace” to overwrite it, or pick another name.")
        return
    save_selection(ws, clean, result["ids"], params["strategy"], {}, params["seed"],
                   metrics=result["metrics"])
    st.success(f"Saved {len(result['ids']):,} images as selection “{clean}” "
               f"({ws.selections_dir / (clean + '.parquet')}).", icon=":material/check_circle:")


def list_selections(ws: Workspace) -> None:
    st.subheader("Saved selections")
    table = cache.selections_summary(ws)
    if table.empty:
        st.caption(f"None yet. Save one above, or run `curate select -w {ws.path} --n 100`.")
        return
    st.dataframe(table, hide_index=True, column_config={
        "coverage radius": st.column_config.NumberColumn(format="%.3f")})


if __name__ == "__main__":
    run_page(render)
