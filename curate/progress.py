"""Progress reporting without a UI dependency.

Long library functions take `progress: Progress | None`, called as
`progress(done, total, info)` where `info` is a short dict of live figures (loss, img/s, ...).
A `stage` entry in info names the phase ("decode", "train", ...): a new stage starts a new bar.
The CLI maps it to tqdm bars, the app to `st.progress`.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

Progress = Callable[[int, int, Mapping[str, object]], None]
# Set by curate.jobs for a background run: the file its latest progress report goes to (the app reads it).
PROGRESS_ENV = "CURATE_PROGRESS_FILE"


def report(progress: Optional[Progress], done: int, total: int, **info: object) -> None:
    if progress is not None:
        progress(done, total, info)


def staged(progress: Optional[Progress], stage: str, unit: str | None = None) -> Optional[Progress]:
    """`progress` with `stage` (and `unit`) filled in where a report names none: one step's second phase
    (the index after the embedding) gets a bar of its own."""
    if progress is None:
        return None
    defaults = {"stage": stage, **({"unit": unit} if unit else {})}
    return lambda done, total, info: progress(done, total, {**defaults, **info})


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


@contextlib.contextmanager
def command_progress(desc: str, unit: str = "img") -> Iterator[Progress]:
    """A command's progress: tqdm bars, and under `curate.jobs` (the app's background runs) also the
    progress file it reads."""
    with tqdm_progress(desc, unit) as bar:
        if not os.environ.get(PROGRESS_ENV):
            yield bar
            return
        write = progress_writer(os.environ[PROGRESS_ENV])

        def both(done, total, info):
            bar(done, total, info)
            write(done, total, {"stage": desc, "unit": unit, **info})
        yield both


def progress_writer(path: str | Path, every_s: float = 1.0):
    """A `Progress` callback that writes the latest report to `path` (atomically, at most every `every_s`)."""
    from curate import storage

    last = [0.0]

    def update(done: int, total: int, info: Mapping[str, object]) -> None:
        t = time.monotonic()
        if t - last[0] < every_s and done < total:
            return
        last[0] = t
        storage.write_json(path, {"done": done, "total": total, "updated_s": time.time(),
                                  "info": {k: v for k, v in info.items() if isinstance(v, (int, float, str))}})
    return update
