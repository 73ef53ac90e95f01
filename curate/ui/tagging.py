"""Tag boxes: tag or untag a set of images (the basket, a map selection), and the list of tags.

Tags live in the workspace (tags.parquet, written by `curate.data.tags`), so they outlast the
session and act as filters on Explore, in selections (`curate select --tag/--exclude tag:NAME`).
"""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from curate.data.tags import add_tag, remove_tag
from curate.ui import cache
from curate.workspace import Workspace

SUGGESTED = ("to_label", "bad")


def tag_box(ws: Workspace, ids: Sequence[int], key: str, what: str) -> None:
    """A tag name and Tag / Untag buttons applied to `ids` (`what` names them on the buttons)."""
    with st.form(key, border=False):
        name = st.text_input("Tag", value=SUGGESTED[0], key=f"{key}_name",
                             help=f"A short name, e.g. {' or '.join(SUGGESTED)}. Tags filter the Explore map.")
        left, right = st.columns(2)
        add = left.form_submit_button(f"Tag {what}", key=f"{key}_add", icon=":material/sell:")
        remove = right.form_submit_button(f"Untag {what}", key=f"{key}_remove")
    if not (add or remove):
        return
    tag = name.strip()
    if not tag:
        st.warning("Enter a tag name first.")
        return
    if not len(ids):
        st.warning(f"Nothing to tag: {what} is empty.")
        return
    changed = add_tag(ws, ids, tag) if add else remove_tag(ws, ids, tag)
    st.toast(f"{'Tagged' if add else 'Untagged'} {changed:,} image(s) “{tag}”.")
    st.rerun(scope="app")  # tag counts and filters elsewhere on the page read the new file


def tag_list(ws: Workspace) -> None:
    """Every tag with its number of images."""
    counts = cache.tag_counts(ws)
    if counts.empty:
        st.caption("No tags yet: tag the basket below, or a map selection on Explore.")
        return
    st.caption(" · ".join(f"`{row.tag}` {row.images:,}" for row in counts.itertuples()))
