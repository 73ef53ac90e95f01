"""The app's one progress adapter: a library `Progress` callback drawn as `st.progress`, and the one way a
page runs a declared workspace step (`curate.pipeline`) under it."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Mapping

import streamlit as st

from curate.progress import Progress
from curate.workspace import Workspace

if TYPE_CHECKING:
    from curate.pipeline import Summary


def progress_text(text: str, done: int, total: int, info: Mapping[str, object]) -> str:
    """`text (stage) done / total`: what the bar says (the stage only when the step names one)."""
    stage = f" ({info['stage']})" if info.get("stage") else ""
    return f"{text}{stage} {done:,} / {total:,}"


@contextlib.contextmanager
def st_progress(text: str) -> Iterator[Progress]:
    """A `Progress` callback for the block: a spinner saying `text` throughout, and a bar with
    "done / total" from the first report; both are cleared when the block ends (also on an error)."""
    slot = st.empty()

    def update(done: int, total: int, info: Mapping[str, object]) -> None:
        slot.progress(min(1.0, done / max(total, 1)), text=progress_text(text, done, total, info))

    with st.spinner(text):
        try:
            yield update
        finally:
            slot.empty()


def run_step(ws: Workspace, name: str, text: str, **params) -> Summary:
    """Run the declared step `name` on `ws` (`curate.pipeline.run_step`, with the step's own `params`),
    its progress drawn by `st_progress(text)`; its summary, the lines the CLI prints, shows as a toast
    (which outlives the rerun that shows the step's results)."""
    from curate import pipeline  # every step's module (torch among them): loaded when a page first runs one

    with st_progress(text) as progress:
        summary = pipeline.run_step(ws, name, progress=progress, **params)
    for line in summary.lines():
        st.toast(line, icon=":material/check_circle:")
    return summary
