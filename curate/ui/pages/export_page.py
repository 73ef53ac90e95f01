"""Export: write a selection (or the basket) to a folder, or download its manifest rows as CSV."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from curate import storage
from curate.export.folder import EXPORT_MODES
from curate.steps.export import export_selection
from curate.steps.select import save_selection
from curate.ui import cache, state
from curate.ui.guard import run_page
from curate.workspace import Workspace

BASKET_SELECTION = "basket"  # the basket is saved under this selection name before exporting
MODE_HELP = {"copy": "copy the image files", "symlink": "link to the originals (no extra space)",
             "list": "only write manifest.csv"}
BASKET_OPTION = "\x00basket"  # cannot collide with a selection name (those are safe file names)


def render(ws: Workspace) -> None:
    st.title("Export")
    choices = ws.selection_names() + ([] if not state.basket() else [BASKET_OPTION])
    if not choices:
        st.info("Nothing to export yet: save a selection on the Select page, or fill the basket on Explore.")
        return
    source = st.selectbox("What to export", choices, format_func=describe, key="export_source")
    ids = source_ids(ws, source)
    st.caption(f"{len(ids):,} images.")
    table = cache.manifest(ws)
    st.download_button("Download manifest CSV", lambda: manifest_csv(table, ids), file_name=f"{source_name(source)}.csv",
                       mime="text/csv", key="export_csv", icon=":material/table:")  # built only when clicked
    with st.form("export_form"):
        mode = st.radio("Mode", EXPORT_MODES, format_func=lambda m: f"{m}: {MODE_HELP[m]}", key="export_mode")
        target = st.text_input("Target folder", key="export_target", placeholder="/path/to/export")
        submitted = st.form_submit_button("Export", type="primary", icon=":material/download:")
    if submitted:
        run_export(ws, source, ids, target, mode)


def describe(option: str) -> str:
    return "the basket" if option == BASKET_OPTION else f"selection “{option}”"


def source_name(option: str) -> str:
    return BASKET_SELECTION if option == BASKET_OPTION else option


def source_ids(ws: Workspace, option: str) -> list[int]:
    if option == BASKET_OPTION:
        return state.basket()
    return [int(i) for i in cache.selection(ws, option)["id"]]


def manifest_csv(manifest: pd.DataFrame, ids: list[int]) -> bytes:
    """CSV of the manifest rows of `ids` in their order, with their rank (what the download holds)."""
    columns = ["id", "path", "label", "width", "height", "sha1", "status"]
    rows = manifest.iloc[ids][columns].reset_index(drop=True)
    return rows.assign(rank=range(len(rows))).to_csv(index=False).encode()


def run_export(ws: Workspace, option: str, ids: list[int], target: str, mode: str) -> None:
    if not target.strip():
        st.error("Enter a target folder to export into.")
        return
    folder = Path(target.strip()).expanduser().resolve()
    if folder.is_relative_to(ws.root) or folder.is_relative_to(ws.path):
        st.error(f"Refusing to export into {folder}: it lies inside the image folder or the workspace. "
                 "Choose a folder outside both.")
        return
    name = source_name(option)
    if option == BASKET_OPTION:
        save_selection(ws, BASKET_SELECTION, ids, strategy="basket", params={}, seed=0)
    bar = st.progress(0.0, text="Exporting…")

    def report(done: int, total: int, info) -> None:
        bar.progress(done / max(total, 1), text=f"Exporting… {done:,} / {total:,}")

    csv = export_selection(ws, name, folder, mode, progress=report)
    bar.empty()
    exported = storage.read_json(csv.with_name("export.json"))["n"]
    st.success(f"Exported {exported:,} images of “{name}” to {folder} ({mode}); manifest: {csv}",
               icon=":material/check_circle:")


if __name__ == "__main__":
    run_page(render)
