"""The kind switch: which items (images, objects, frames) a page shows, one choice per session.

Shown only when the workspace holds more than one embedded kind (`curate.data.items.present_kinds`);
otherwise the page works on the one kind there is. The choice is kept in a plain session key, so it
follows the user from page to page (a widget's own state is dropped when its page is left).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from curate.data.items import default_kind, kinds, present_kinds
from curate.ui import cache
from curate.workspace import Workspace

KIND_KEY = "item_kind"  # the chosen kind (plain key: survives page switches)
WIDGET_KEY = "item_kind_switch"
NAMES = {"image": "images", "object": "objects", "frame": "video frames"}


def kind_switch(ws: Workspace) -> str:
    """Draw the switch (when there is a choice) and return the kind the page works on."""
    manifest = cache.manifest(ws)
    present = present_kinds(manifest)
    chosen = st.session_state.get(KIND_KEY)
    if chosen not in present:
        chosen = default_kind(manifest) if default_kind(manifest) in present or not present else present[0]
    if len(present) < 2:
        return chosen
    st.session_state[WIDGET_KEY] = chosen  # seeded every run: another page may have changed the choice
    picked = st.segmented_control("Items", present, format_func=NAMES.get, key=WIDGET_KEY, on_change=_changed,
                                  help="This workspace holds several kinds of items: the page shows one kind.")
    return picked or chosen


def _changed() -> None:
    if st.session_state.get(WIDGET_KEY):
        st.session_state[KIND_KEY] = st.session_state[WIDGET_KEY]


def choose(kind: str) -> None:
    """Make `kind` the chosen kind (e.g. a search by an object shows objects); call before the switch is drawn."""
    st.session_state[KIND_KEY] = str(kind)


def kind_of(ws: Workspace, item_id: int) -> str:
    """The kind of manifest row `item_id`."""
    return str(kinds(cache.manifest(ws).iloc[[int(item_id)]])[0])


def of_kind_ids(ws: Workspace, ids, kind: str) -> list[int]:
    """The ids (in their order) whose item is of `kind`."""
    ids = np.asarray([int(i) for i in ids], dtype=np.int64)
    if not len(ids):
        return []
    found = kinds(cache.manifest(ws))
    return ids[found[ids] == kind].tolist()


def selections_of_kind(ws: Workspace, kind: str) -> list[str]:
    """Saved selections whose items are of `kind` (a selection ranks one kind; an empty one counts for any)."""
    found = kinds(cache.manifest(ws))
    out = []
    for name in ws.selection_names():
        ids = cache.selection(ws, name)["id"].to_numpy(np.int64)
        if not len(ids) or found[ids[0]] == kind:
            out.append(name)
    return out


def kind_rows(ws: Workspace, table: pd.DataFrame | None) -> pd.DataFrame | None:
    """Draw the switch and keep the rows of `table` (an `id` column) of the chosen kind; None stays None."""
    kind = kind_switch(ws)
    if table is None or "id" not in table.columns:
        return table
    found = kinds(cache.manifest(ws))
    return table[found[table["id"].to_numpy(np.int64)] == kind]
