"""Duplicates: exact and near-duplicate groups side by side, the keeper (largest image) marked."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from curate.ui import cache, state
from curate.ui.gallery import id_captions, show_grid
from curate.ui.guard import run_page
from curate.workspace import Workspace

GROUPS_PER_PAGE = 10
MEMBERS_SHOWN = 12  # of one group: a huge near-duplicate cluster is summarised, not drawn in full


def render(ws: Workspace) -> None:
    st.title("Duplicates")
    table = cache.duplicates(ws)
    if table is None:
        st.info(f"No duplicate scan yet: run `curate dedup -w {ws.path}`.", icon=":material/info:")
        return
    meta = cache.json_file(ws.sidecar(ws.duplicates_file)) or {}
    show_summary(table, meta)
    if table.empty:
        st.success("No duplicates found.", icon=":material/check_circle:")
        return
    kind = st.segmented_control("Kind", ["all", "exact", "near"], default="all", key="dup_kind") or "all"
    groups = group_sizes(table, kind)
    pages = max(1, -(-len(groups) // GROUPS_PER_PAGE))
    page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key="dup_page")) if pages > 1 else 1
    for group in groups.index[(page - 1) * GROUPS_PER_PAGE:page * GROUPS_PER_PAGE]:
        show_group(ws, table[table["group"] == group])
    if st.button("Add all non-keepers to the basket", key="dup_add", icon=":material/add_shopping_cart:",
                 help="Collect the images a de-duplicated dataset would drop, e.g. to inspect or export them."):
        added = state.add_to_basket(table.loc[~table["keeper"], "id"])
        st.toast(f"Added {added:,} new image(s) to the basket.")
        st.rerun()


def show_summary(table: pd.DataFrame, meta: dict) -> None:
    cols = st.columns(4)
    cols[0].metric("Groups", f"{table['group'].nunique():,}")
    cols[1].metric("Images in groups", f"{len(table):,}")
    cols[2].metric("Removable (non-keepers)", f"{int((~table['keeper']).sum()):,}")
    cols[3].metric("Near threshold", f"{meta['threshold']:.3f}" if "threshold" in meta else "?",
                   help="Cosine similarity above which two images count as near duplicates. Unless set with "
                        "`curate dedup --threshold`, it is calibrated on the data: the median similarity of each image "
                        "to its nearest neighbour plus 5 robust standard deviations, within [0.9, 0.995].")


def group_sizes(table: pd.DataFrame, kind: str) -> pd.Series:
    """Group number -> size for groups of `kind`, largest first."""
    rows = table if kind == "all" else table[table["kind"].astype(str) == kind]
    return rows.groupby("group").size().sort_values(ascending=False, kind="stable")


def show_group(ws: Workspace, members: pd.DataFrame) -> None:
    members = members.sort_values("keeper", ascending=False, kind="stable")  # keeper first
    kind = str(members["kind"].iloc[0])
    st.markdown(f"**Group {int(members['group'].iloc[0])}** · {kind} · {len(members):,} images")
    ids = members["id"].to_numpy()[:MEMBERS_SHOWN]
    keepers = members["keeper"].to_numpy()[:MEMBERS_SHOWN]
    captions = [f"★ keep {c}" if keep else c for c, keep in zip(id_captions(ws, ids), keepers)]
    show_grid(ws, ids, captions)
    if len(members) > MEMBERS_SHOWN:
        st.caption(f"… and {len(members) - MEMBERS_SHOWN:,} more in this group.")


if __name__ == "__main__":
    run_page(render)
