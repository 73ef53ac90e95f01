"""The app's cache declarations (`curate.ui.cache.cached`): keyed by the files a computation reads."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from curate import storage
from curate.ui.cache import cached
from curate.workspace import Workspace


def test_a_rewritten_file_is_read_again_and_an_unchanged_one_comes_from_the_cache(tmp_path):
    calls = []

    @cached(lambda path: [path], max_entries=4)
    def read(path: Path) -> str:
        calls.append(path.name)
        return path.read_text()

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("bee")
    assert [read(a), read(a), read(b), read(path=b)] == ["one", "one", "bee", "bee"]
    assert calls == ["a.txt", "b.txt"]

    a.write_text("two!")  # rewritten: another size
    assert [read(a), read(b)] == ["two!", "bee"] and calls == ["a.txt", "b.txt", "a.txt"]
    a.write_text("six!")  # the same size, a later modification time
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 10**9))
    assert [read(a), read(b)] == ["six!", "bee"] and calls == ["a.txt", "b.txt", "a.txt", "a.txt"]


def test_each_declaration_has_its_own_cache_and_shared_arrays_are_read_only(tmp_path):
    ws = Workspace.create(tmp_path / "ws", tmp_path)
    storage.write_npy(ws.embeddings_file, np.ones((3, 2), np.float32))

    @cached(lambda ws: [ws.embeddings_file], resource=True, max_entries=2)
    def total(ws: Workspace) -> np.ndarray:
        return np.load(ws.embeddings_file).sum(0)

    @cached(lambda ws: [ws.embeddings_file], resource=True, max_entries=2)
    def doubled(ws: Workspace) -> np.ndarray:
        return np.load(ws.embeddings_file).sum(0) * 2

    assert total(ws).tolist() == [3, 3] and doubled(ws).tolist() == [6, 6]  # same arguments, two caches
    assert total(Workspace(ws.path)) is total(ws)  # another handle on the folder: the one shared object
    assert not total(ws).flags.writeable
    storage.write_npy(ws.embeddings_file, np.ones((4, 2), np.float32))  # the workspace is rebuilt
    assert total(ws).tolist() == [4, 4]
