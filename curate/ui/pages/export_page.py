"""Export: a selection (or the basket) to a folder (copy / symlink / hardlink / list) or as a zip
download. A folder export is reviewed first: what will be written, where, how much, and only a
second click writes it."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from curate.export.folder import EXPORT_MODES
from curate.data.items import present_kinds
from curate.steps.export import (ExportPlan, export_formatted, export_ids, export_selection, plan_export,
                                 zip_selection)
from curate.ui import access, cache, state
from curate.ui.guard import run_page
from curate.ui.kinds import NAMES, kind_switch, of_kind_ids, selections_of_kind
from curate.ui.progress import st_progress
from curate.workspace import Workspace

BASKET_OPTION = "\x00basket"  # cannot collide with a selection name (those are safe file names)
DESTINATIONS = ("Folder", "Zip download")
ANNOTATED = "With annotations"  # a third destination when the workspace holds objects
FORMAT_HELP = {"yolo": "YOLO (data.yaml, images/, labels/)", "coco": "COCO instances JSON",
               "voc": "Pascal VOC XML", "labelstudio": "Label Studio tasks (boxes as pre-annotations, curate's "
               "suggested classes)", "crops": "object crops in class folders"}
MODE_HELP = {"copy": "copy the image files", "symlink": "link to the originals (no extra space)",
             "hardlink": "hard-link the originals (same file system only; no extra space)",
             "list": "only write the manifest files"}
MAX_ZIP_MB = int(os.environ.get("CURATE_MAX_ZIP_MB", "200"))  # a zip download is built in memory: beyond, use a folder
PLAN_KEY = "export_plan"  # {"source", "mode", "target"} of the folder export awaiting confirmation
GO_KEY = "export_go"  # set by the confirm button's callback: the next run writes the plan


def render(ws: Workspace) -> None:
    st.title("Export")
    kind = kind_switch(ws)
    basket = of_kind_ids(ws, state.basket(), kind)
    choices = selections_of_kind(ws, kind) + ([] if not basket else [BASKET_OPTION])
    if not choices:
        st.info("Nothing to export yet: save a selection on the Select page, or fill the basket on Explore.")
        return
    source = st.selectbox("What to export", choices, format_func=describe, key="export_source")
    ids = of_kind_ids(ws, source_ids(ws, source), kind)  # the basket may hold several kinds
    st.caption(f"{len(ids):,} {NAMES.get(kind, 'images')}.")
    table = cache.manifest(ws)
    st.download_button("Download manifest CSV", lambda: manifest_csv(table, ids), file_name=f"{source_name(source)}.csv",
                       mime="text/csv", key="export_csv", icon=":material/table:", on_click="ignore")  # built when clicked
    annotated = "object" in present_kinds(table)
    destinations = DESTINATIONS + ((ANNOTATED,) if annotated else ())
    destination = st.segmented_control("Destination", destinations, default=DESTINATIONS[0], key="export_dest")
    if destination == DESTINATIONS[1]:
        zip_download(ws, source, ids)
    elif destination == ANNOTATED:
        annotated_export(ws, source, ids)
    else:
        folder_export(ws, source, ids)


# --- with annotations ----------------------------------------------------------------------------
def annotated_export(ws: Workspace, source: str, ids: list[int]) -> None:
    """The items with their boxes in an annotation format (or object crops): `curate export --format`."""
    with st.form("export_annotated"):
        fmt = st.selectbox("Format", list(FORMAT_HELP), format_func=FORMAT_HELP.get, key="export_format")
        target = st.text_input("Target folder", key="export_annotated_target", placeholder="/path/to/export")
        go = st.form_submit_button("Export", type="primary", icon=":material/download:")
    if not go:
        return
    try:
        with st_progress("Exporting…") as report:
            folder = export_formatted(ws, None if source == BASKET_OPTION else source,
                                      access.allowed(target.strip()), fmt, progress=report, ids=ids)
    except (ValueError, PermissionError, OSError) as err:
        st.error(f"Nothing exported: {err}", icon=":material/error:")
        return
    st.success(f"Exported {len(ids):,} items of {describe(source)} as {fmt} to {folder}", icon=":material/check_circle:")


def describe(option: str) -> str:
    return "the basket" if option == BASKET_OPTION else f"selection “{option}”"


def source_name(option: str) -> str:
    return "basket" if option == BASKET_OPTION else option


def source_ids(ws: Workspace, option: str) -> list[int]:
    if option == BASKET_OPTION:
        return state.basket()
    return [int(i) for i in cache.selection(ws, option)["id"]]


def make_plan(ws: Workspace, option: str, ids: list[int], target: str | Path, mode: str) -> ExportPlan:
    target = access.allowed(target)  # the browser writes only inside the app's roots
    if option == BASKET_OPTION:
        return plan_export(ws, target, mode, ids=ids)
    return plan_export(ws, target, mode, selection=option)


def manifest_csv(manifest: pd.DataFrame, ids: list[int]) -> bytes:
    """CSV of the manifest rows of `ids` in their order, with their rank (what the download holds)."""
    columns = ["id", "path", "label", "width", "height", "sha1", "status"]
    rows = manifest.iloc[ids][columns].reset_index(drop=True)
    return rows.assign(rank=range(len(rows))).to_csv(index=False).encode()


# --- folder --------------------------------------------------------------------------------------
def folder_export(ws: Workspace, source: str, ids: list[int]) -> None:
    with st.form("export_form"):
        mode = st.radio("Mode", EXPORT_MODES, format_func=lambda m: f"{m}: {MODE_HELP[m]}", key="export_mode")
        target = st.text_input("Target folder", key="export_target", placeholder="/path/to/export")
        if st.form_submit_button("Review export", type="primary", icon=":material/fact_check:"):
            if not target.strip():
                st.error("Enter a target folder to export into.")
                st.session_state.pop(PLAN_KEY, None)
            else:
                st.session_state[PLAN_KEY] = {"source": source, "mode": mode, "target": target.strip()}
    request = st.session_state.get(PLAN_KEY)
    if request and request["source"] == source:
        confirm(ws, source, ids, request)


def confirm(ws: Workspace, source: str, ids: list[int], request: dict) -> None:
    """Show exactly what the export will write, and write it only on a second click."""
    try:
        plan = make_plan(ws, source, ids, request["target"], request["mode"])
    except (ValueError, PermissionError) as err:  # inside the image folder or the workspace; outside the roots
        st.session_state.pop(PLAN_KEY, None)
        st.error(str(err)[0].upper() + str(err)[1:], icon=":material/error:")
        return
    if st.session_state.pop(GO_KEY, False):  # confirmed on the previous click: write, and show the outcome only
        run_export(ws, source, ids, plan)
        return
    with st.container(border=True):
        st.markdown(f"**This will write into `{plan.target}`**")
        cols = st.columns(4)
        cols[0].metric("Images", f"{plan.n:,}")
        cols[1].metric("Mode", plan.mode)
        cols[2].metric("Image data", size_text(plan.image_bytes),
                       help="Total size of the images; only copy duplicates it on disk.")
        cols[3].metric("Already in the folder", f"{plan.existing:,}",
                       help="Existing entries are kept; files at the same paths are replaced (identical ones are left).")
        written = plan.files + (["…"] if plan.n > len(plan.files) and plan.files else []) + plan.manifests
        st.code("\n".join(written), language=None)
        left, right = st.columns(2)
        left.button(f"Write {plan.n:,} images to {plan.target.name or plan.target}", key="export_confirm",
                    type="primary", icon=":material/download:", on_click=confirmed)
        if right.button("Cancel", key="export_cancel"):
            st.session_state.pop(PLAN_KEY, None)
            st.rerun()


def confirmed() -> None:
    st.session_state[GO_KEY] = True


def run_export(ws: Workspace, option: str, ids: list[int], plan: ExportPlan) -> None:
    try:
        with st_progress("Exporting…") as report:
            if option == BASKET_OPTION:
                csv = export_ids(ws, ids, plan.target, plan.mode, progress=report, source="basket")
            else:
                csv = export_selection(ws, option, plan.target, plan.mode, progress=report)
    except OSError as err:  # e.g. hard links across file systems, a full disk
        st.error(f"The export stopped: {err}", icon=":material/error:")
        return
    st.session_state.pop(PLAN_KEY, None)
    st.success(f"Exported {plan.n:,} images of {describe(option)} to {plan.target} ({plan.mode}); manifest: {csv}",
               icon=":material/check_circle:")


# --- zip -----------------------------------------------------------------------------------------
def zip_download(ws: Workspace, source: str, ids: list[int]) -> None:
    name = f"{source_name(source)}.zip"
    plan = make_plan(ws, source, ids, name, "zip")
    with st.container(border=True):
        st.markdown(f"**{name}**: {plan.n:,} images, {size_text(plan.image_bytes)}, stored uncompressed "
                    "(JPEG and PNG do not shrink) with manifest.csv and manifest.json.")
        written = plan.files + (["…"] if plan.n > len(plan.files) and plan.files else []) + plan.manifests
        st.code("\n".join(written), language=None)
    if plan.image_bytes > MAX_ZIP_MB * 10**6:
        st.warning(f"{size_text(plan.image_bytes)} is too much for a download (the zip is built in memory; the "
                   f"limit is {MAX_ZIP_MB} MB). Choose Destination → Folder to export it to a folder instead.",
                   icon=":material/warning:")
        return
    selection, chosen = (None, list(ids)) if source == BASKET_OPTION else (source, None)
    st.download_button(f"Download {name}", lambda: zip_bytes(ws, selection, chosen), file_name=name,
                       mime="application/zip", key="export_zip", type="primary", icon=":material/folder_zip:",
                       on_click="ignore")  # the zip is built only when clicked


def zip_bytes(ws: Workspace, selection: str | None, ids: list[int] | None) -> bytes:
    buffer = io.BytesIO()
    zip_selection(ws, buffer, selection=selection, ids=ids)
    return buffer.getvalue()


def size_text(n_bytes: int) -> str:
    """`1.2 MB`: decimal units, as file managers show them."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes:,} B"

if __name__ == "__main__":
    run_page(render)
