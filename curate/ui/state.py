"""Per-session state: the workspace path and the basket. Small values only (a path, a list of ids).

Big arrays never go into `st.session_state`: they live in the shared caches (`curate.ui.cache`).
"""
from __future__ import annotations

import argparse
from typing import Iterable, Mapping

import streamlit as st

from curate.ui import access
from curate.workspace import Workspace

WORKSPACE_ENV = "CURATE_WORKSPACE"
WORKSPACE_KEY = "workspace_input"  # the sidebar text input's key (shows and edits the open workspace)
# The open workspace itself lives in a plain key: Streamlit drops a widget's state when a page switch
# interrupts a run (streamlit#8425), which under load (10 sessions on 2 cores) closed the workspace of
# sessions that changed page quickly. Plain keys are never dropped; the input is seeded from it.
OPEN_KEY = "workspace_open"
BASKET_KEY = "basket"
NEXT_WORKSPACE_KEY = "workspace_next"  # a workspace to open on the next run (set after the input is drawn)


def workspace_from_args(argv: list[str], environ: Mapping[str, str]) -> str | None:
    """`--workspace WS` from the arguments after `streamlit run app.py --`, else $CURATE_WORKSPACE.

    Unknown arguments are ignored: under AppTest or pytest, `sys.argv` holds the test runner's own.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    parser.add_argument("--workspace", "-w")
    try:
        known, _ = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):  # e.g. `--workspace` with no value
        known = argparse.Namespace(workspace=None)
    return known.workspace or environ.get(WORKSPACE_ENV) or None


def init_workspace(initial: str | None) -> None:
    """Seed the workspace input once per session; afterwards the user's entry wins."""
    st.session_state.setdefault(OPEN_KEY, initial or "")


def open_next(path: str) -> None:
    """Open workspace `path` on the next run (a widget's value cannot change once it is drawn this run)."""
    st.session_state[NEXT_WORKSPACE_KEY] = str(path)


def apply_next() -> None:
    """Move a workspace asked for by `open_next` into the workspace input; call before drawing the input."""
    if NEXT_WORKSPACE_KEY in st.session_state:
        st.session_state[OPEN_KEY] = st.session_state.pop(NEXT_WORKSPACE_KEY)


def seed_input() -> None:
    """Show the open workspace in the folder input; call before drawing the input (its key may have
    been dropped, or hold a value typed into a page that was interrupted)."""
    st.session_state[WORKSPACE_KEY] = st.session_state.get(OPEN_KEY, "")


def typed() -> None:
    """The folder input's on_change: what was typed becomes the open workspace."""
    st.session_state[OPEN_KEY] = str(st.session_state.get(WORKSPACE_KEY) or "")


def open_path(path: str) -> None:
    """Open workspace `path` now (before the folder input is drawn in this run)."""
    st.session_state[OPEN_KEY] = str(path)


def current_workspace() -> Workspace | None:
    """The workspace this session looks at (it may not exist yet), or None when no path is set or the
    path lies outside the folders this app may use (`refused_workspace` says why)."""
    text = str(st.session_state.get(OPEN_KEY) or "").strip()
    if not text or refused_workspace() is not None:
        return None
    return Workspace(access.allowed(text))


def refused_workspace() -> str | None:
    """Why the typed workspace folder may not be opened (outside the app's roots), or None."""
    text = str(st.session_state.get(OPEN_KEY) or "").strip()
    try:
        if text:
            access.allowed(text)
    except PermissionError as err:
        return str(err)
    return None


def basket() -> list[int]:
    """Ids the user collected (in the order added), shared by every page of this session."""
    return list(st.session_state.get(BASKET_KEY, []))


def add_to_basket(ids: Iterable[int]) -> int:
    """Append ids not yet in the basket; returns how many were new."""
    current = st.session_state.setdefault(BASKET_KEY, [])
    seen = set(current)
    new = [i for i in dict.fromkeys(int(i) for i in ids) if i not in seen]  # dict: dedup, order kept
    current.extend(new)
    return len(new)


def clear_basket() -> None:
    st.session_state[BASKET_KEY] = []


def remove_from_basket(ids: Iterable[int]) -> int:
    """Take ids out of the basket; returns how many were in it."""
    gone = {int(i) for i in ids}
    current = basket()
    kept = [i for i in current if i not in gone]
    st.session_state[BASKET_KEY] = kept
    return len(current) - len(kept)
