"""Error handling for pages: every failure becomes an `st.error` that says what to do, never a traceback."""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator

import streamlit as st

from curate.data.images import ImageError
from curate.ui import state
from curate.workspace import Workspace

log = logging.getLogger(__name__)

# The library's own errors already name the file and the command that fixes it.
EXPECTED_ERRORS = (FileNotFoundError, PermissionError, ValueError, ImageError)


@contextlib.contextmanager
def errors_as_messages() -> Iterator[None]:
    """Show exceptions raised inside the block as `st.error` messages.

    Streamlit's rerun/stop signals derive from BaseException and pass through untouched.
    """
    try:
        yield
    except EXPECTED_ERRORS as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # anything else: the details go to the server log, not the page
        log.exception("page failed")
        st.error(f"Something went wrong: {type(err).__name__}: {err}. The full details are in the terminal "
                 "running the app. If the workspace was rebuilt meanwhile, reload the page.",
                 icon=":material/error:")


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
