"""Progress reporting without a UI dependency.

Long library functions take `progress: Progress | None`, called as
`progress(done, total, info)` where `info` is a short dict of live figures (loss, img/s, ...).
A `stage` entry in info names the phase ("decode", "train", ...): a new stage starts a new bar.
The CLI maps it to tqdm bars, the app to `st.progress`.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping, Optional

Progress = Callable[[int, int, Mapping[str, object]], None]


def report(progress: Optional[Progress], done: int, total: int, **info: object) -> None:
    if progress is not None:
        progress(done, total, info)


@contextlib.contextmanager
def tqdm_progress(desc: str, unit: str = "img", disable: bool = False) -> Iterator[Progress]:
    """A `Progress` callback drawing tqdm bars, one per stage (closed when the block ends)."""
    from tqdm.auto import tqdm

    state: dict = {"bar": None, "stage": None}

    def update(done: int, total: int, info: Mapping[str, object]) -> None:
        info = dict(info)
        stage = info.pop("stage", desc)
        bar = state["bar"]
        if bar is None or stage != state["stage"]:
            if bar is not None:
                bar.close()
            bar = state["bar"] = tqdm(desc=str(stage), unit=info.pop("unit", unit), total=total, disable=disable,
                                      dynamic_ncols=True, smoothing=0.1)
            state["stage"] = stage
        info.pop("unit", None)
        bar.total = total
        if info:
            bar.set_postfix({k: _fmt(v) for k, v in info.items()}, refresh=False)
        bar.update(done - bar.n)  # redraws at most every `mininterval` seconds

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].close()


def _fmt(value: object) -> object:
    return f"{value:.4g}" if isinstance(value, float) else value
