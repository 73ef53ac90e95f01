"""The workspace generation the service answers from, replaced whole when the workspace is rebuilt.

A request takes `current()` once and answers from that one `OpenWorkspace` (manifest, embeddings, index
and encoder loaded together), so an answer never mixes two generations. A watcher thread looks at the
files' stamps every `poll_s`; when they changed it loads a new `OpenWorkspace` completely beside the
old one and swaps it in. While a rebuild is half written (`curate.generations.StaleFile`: an index of
other embeddings) it keeps answering from the old generation and tries again at the next poll.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from curate.session import OpenWorkspace, open_workspace

log = logging.getLogger(__name__)


def stamps(ws_path: Path) -> tuple:
    """(name, size, mtime_ns) of the files an answer is made of: any rewrite changes this."""
    out = []
    for name in ("manifest.parquet", "embeddings.npy", "embeddings.json", "index.faiss", "index.json",
                 "model/encoder.pt", "views.json"):
        try:
            st = os.stat(ws_path / name)
        except FileNotFoundError:
            continue
        out.append((name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def load(ws_path: Path) -> OpenWorkspace:
    """An OpenWorkspace with everything an answer needs already loaded (and checked to belong together)."""
    session = open_workspace(ws_path)
    session.manifest, session.embeddings, session.index  # noqa: B018 - load now, not in a request
    if session.ws.encoder_file.exists():
        session.encoder  # noqa: B018
    return session


class Current:
    def __init__(self, ws_path: Path, poll_s: float = 1.0):
        self.ws_path = Path(ws_path)
        self.poll_s = poll_s
        self._stamps = stamps(self.ws_path)
        self._session = load(self.ws_path)
        self.generation = 1  # counts the generations served, for /health and the tests
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="curate-serve-reload", daemon=True)
        self._watcher.start()

    def current(self) -> OpenWorkspace:
        return self._session

    def reload_if_changed(self) -> bool:
        """Load and swap in the workspace if its files changed since the last load; True when swapped."""
        now = stamps(self.ws_path)
        if now == self._stamps:
            return False
        try:
            session = load(self.ws_path)
        except ValueError as err:  # StaleFile (a rebuild under way) among them: keep the old one, retry later
            log.info("workspace %s is being rewritten; still answering from generation %d (%s)",
                     self.ws_path, self.generation, str(err).splitlines()[0])
            return False
        if stamps(self.ws_path) != now:  # changed again while loading: load again at the next poll
            return False
        self._session, self._stamps = session, now
        self.generation += 1
        log.info("reloaded %s: generation %d", self.ws_path, self.generation)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.reload_if_changed()
            except Exception:  # a watcher that dies would freeze the service on an old generation
                log.exception("reloading %s failed; still answering from generation %d", self.ws_path,
                              self.generation)

    def close(self) -> None:
        self._stop.set()
