"""Compare this workspace's encoder with another's, without labels (curate.steps.compare_models):
the overlap of their nearest-neighbour sets, and the images where the two disagree most."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from curate.steps.compare_models import compare_models
from curate.ui import access, cache
from curate.workspace import Workspace

RESULT_KEY = "compare_models_result"
NEIGHBOURS_SHOWN = 6  # per row: enough to see what each encoder calls similar
SMALL = 72  # px: three rows per disagreement must fit a screen


def show_compare(ws: Workspace) -> None:
    """A form for the other workspace, then the comparison (kept in the session until the next one)."""
    st.subheader("Compare with another encoder")
    st.caption("Built on the same images with another recipe or a longer run? See how much the neighbours each "
               "encoder returns overlap (Jaccard@k), no labels needed, and where they differ most.")
    with st.form("compare_models"):
        other = st.text_input("Other workspace folder", placeholder="/path/to/other_workspace")
        left, right = st.columns(2)
        k = left.number_input("Neighbours per image (k)", 1, 100, 10)
        sample = right.number_input("Query images", 10, 100_000, 2000, step=100)
        go = st.form_submit_button("Compare", icon=":material/compare_arrows:")
    if go:
        if not other.strip():
            st.warning("Enter the other workspace's folder.")
            return
        with st.spinner("Finding each image's neighbours with both encoders..."):
            other_ws = Workspace(access.allowed(other.strip()))
            st.session_state[RESULT_KEY] = (str(ws.path), compare_models(ws, other_ws, int(k), int(sample)))
    result = st.session_state.get(RESULT_KEY)
    if result and result[0] == str(ws.path):
        show_result(ws, result[1])


def show_result(ws: Workspace, report: dict) -> None:
    other = Workspace(report["workspaces"]["b"])
    cols = st.columns(4)
    cols[0].metric(f"Mean Jaccard@{report['k']}", f"{report['jaccard_mean']:.3f}",
                   help="1: both encoders return the same neighbours; 0: none in common")
    cols[1].metric("Identical neighbourhoods", f"{report['identical_share']:.1%}")
    cols[2].metric("Nothing in common", f"{report['disjoint_share']:.1%}")
    cols[3].metric("Images compared", f"{report['queries']:,} of {report['common_images']:,}")
    purity = report.get("label_purity")
    if purity:
        st.caption(f"With the labels: {purity['a']:.1%} of this encoder's neighbours share their image's label, "
                   f"{purity['b']:.1%} of the other's.")
    hist = report["histogram"]
    bins = [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(hist["edges"][:-1], hist["edges"][1:])]
    st.bar_chart(pd.DataFrame({"Jaccard": bins, "images": hist["counts"]}), x="Jaccard", y="images", height=200)
    st.markdown("**Where the two encoders disagree most** (query, then this workspace's neighbours, then the "
                "other's)")
    for d in report["disagreements"]:
        st.caption(f"#{d['id_a']} `{d['path']}` · Jaccard {d['jaccard']:.2f}")
        query, mine, theirs = st.columns([1, 3, 3])
        query.image(cache.thumbnail(ws, d["id_a"], SMALL), width=SMALL)
        mine.image([cache.thumbnail(ws, i, SMALL) for i in d["neighbours_a"][:NEIGHBOURS_SHOWN]], width=SMALL)
        theirs.image([cache.thumbnail(other, i, SMALL) for i in d["neighbours_b"][:NEIGHBOURS_SHOWN]], width=SMALL)
