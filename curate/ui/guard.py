"""Error handling for pages: every failure becomes an `st.error` that says what to do, never a traceback."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Iterator

import streamlit as st

from curate.data.images import ImageError
from curate.generations import StaleFile, size_and_mtime
from curate.locks import busy
from curate.ui import state
from curate.workspace import Workspace

log = logging.getLogger(__name__)

# The library's own errors already name the file and the command that fixes it.
EXPECTED_ERRORS = (FileNotFoundError, PermissionError, ValueError, ImageError)
WATCH_S = 2.0  # while a writer updates the workspace, how often a page that waits for it looks again


@contextlib.contextmanager
def errors_as_messages() -> Iterator[None]:
    """Show exceptions raised inside the block as `st.error` messages.

    Streamlit's rerun/stop signals derive from BaseException and pass through untouched.
    """
    try:
        yield
    except StaleFile as err:  # files of two generations: a run is writing (or was stopped half way)
        show_updating(err)
    except EXPECTED_ERRORS as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # anything else: the details go to the server log, not the page
        log.exception("page failed")
        st.error(f"Something went wrong: {type(err).__name__}: {err}. The full details are in the terminal "
                 "running the app. If the workspace was rebuilt meanwhile, reload the page.",
                 icon=":material/error:")


def show_updating(err: StaleFile) -> None:
    """Say that the workspace is being updated; while a writer works, reload the page once it wrote
    something or stopped (the caches are keyed by file times, so the reload reads the new files)."""
    st.warning(f"**This workspace is being updated.** {err}", icon=":material/sync:")
    ws = state.current_workspace()
    if err.busy and ws is not None:
        st.fragment(_reload_when_changed, run_every=WATCH_S)(str(ws.path), _writes_seen(ws.path))


def _writes_seen(path: str | Path) -> tuple:
    """What changes when a writer completes a file (every write ends with a sidecar) or stops."""
    ws = Workspace(path)
    sidecars = tuple(sorted((f.name, size_and_mtime(f)) for f in ws.path.glob("*.json")))  # None once removed
    return sidecars, bool(busy(ws.locks_dir))


def _reload_when_changed(path: str, seen: tuple) -> None:
    if _writes_seen(path) != seen:
        st.rerun(scope="app")


def run_page(render: Callable[[Workspace], None]) -> None:
    """Render a page for the current workspace, or explain how to open one."""
    ws = state.current_workspace()
    if ws is None:
        show_no_workspace()
        return
    with errors_as_messages():
        render(ws.require())


def show_no_workspace() -> None:
    st.info(
        "**No workspace is open.** Pick or enter a workspace folder in the sidebar, create one from a folder "
        "of images on the Overview page, or start the app on one:\n\n"
        "1. build a workspace from a folder of images: `curate run IMAGES -w WS`\n"
        "2. open it: `curate app -w WS` (or `streamlit run app.py -- --workspace WS`, "
        f"or set `{state.WORKSPACE_ENV}=WS`)",
        icon=":material/folder_open:")
