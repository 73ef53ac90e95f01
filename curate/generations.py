"""Generations: which write produced each workspace file, and from which versions of its inputs.

Each file is replaced atomically; a set of files is not. Between a new embeddings.npy and its new
index, map and scores, a reader could pair vectors of one embedding run with an index of another.
So the sidecar of each derived file (`x.json` beside `x.npy`) names

    generation  an id of this write (new each time the file is written)
    stamp       size and mtime of the data file it describes (`size_and_mtime`), and `digest` its
                BLAKE2 hash; the sidecar is written after its data file, so a data file that no longer
                matches is newer than its sidecar (a write is half done). The mtime is the fast path; a copied workspace
                (new mtimes) is recognised by the digest
    inputs      the generation of each file it was computed from, as they were when it was read

`check` raises `StaleFile` when any of that does not hold now, naming the writer at work (from the
workspace's locks) or the command that brings the file up to date; readers load with `load_checked`,
which checks before and after loading. Files written before generations existed have no
`generation` and pass unchecked (old workspaces keep opening).
"""
from __future__ import annotations

import functools
import hashlib
import os
import uuid
from pathlib import Path
from typing import Callable, Iterable, Protocol, TypeVar

from curate import storage
from curate.locks import busy

T = TypeVar("T")

# The command that rewrites each checked file (a stale file's message says what brings it up to date).
REBUILT_BY = {"embeddings.npy": "curate embed", "index.faiss": "curate embed", "projection_umap.npy": "curate run",
              "projection_tsne.npy": "curate map --method tsne",
              "knn_graph.npz": "curate scores", "duplicates.parquet": "curate dedup",
              "scores.parquet": "curate scores", "label_issues.parquet": "curate label-issues"}


class Layout(Protocol):
    """What `check` needs of a workspace: a `curate.workspace.Workspace` (not imported: its checked loaders use
    this module, so the dependency points one way)."""

    @property
    def path(self) -> Path: ...
    @property
    def locks_dir(self) -> Path: ...


class StaleFile(ValueError):
    """A workspace file does not belong with the files it was computed from (a write is under way or was stopped)."""

    def __init__(self, message: str, busy: bool):
        super().__init__(message)
        self.busy = busy  # True: a writer holds one of the workspace's locks now; the file will catch up


def sidecar_of(file: Path) -> Path:
    return Path(file).with_suffix(".json")


def size_and_mtime(file: Path) -> list[int] | None:
    """[size, mtime in ns] of `file`, None when it is missing (a rename keeps the mtime of the write)."""
    try:
        st = os.stat(file)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def digest(file: Path) -> str | None:
    """BLAKE2 hash of `file`'s bytes (None when missing); remembered per (path, size, mtime)."""
    stat = size_and_mtime(file)
    return None if stat is None else _digest(str(file), *stat)


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def generation(file: Path) -> str | None:
    """The generation of `file` from its sidecar; for embeddings written before generations existed,
    their model and time (what index.json recorded then); None when unknown."""
    side = sidecar_of(file)
    if not side.exists():
        return None
    meta = storage.read_json(side)
    if meta.get("generation"):
        return meta["generation"]
    if Path(file).name == "embeddings.npy" and meta.get("model"):
        return f"{meta.get('model')}@{meta.get('created')}"
    return None


def write_sidecar(file: Path, meta: dict, inputs: dict[str, str | None] | None = None) -> dict:
    """Write `file`'s sidecar, after `file` itself: `meta` plus a new generation, the file's stamp and
    `inputs` (name -> generation, as taken with `inputs_of` before reading them). Returns what was written."""
    full = {**meta, "generation": uuid.uuid4().hex[:16], "stamp": size_and_mtime(file), "digest": digest(file),
            "inputs": dict(inputs or {})}
    storage.write_json(sidecar_of(file), full)
    return full


def inputs_of(folder: Path, names: Iterable[str]) -> dict[str, str | None]:
    """The current generations of the files `names` in `folder`: take them before reading those files,
    so a write that lands meanwhile makes the result stale rather than silently mixed."""
    return {name: generation(Path(folder) / name) for name in names}


def problems(file: Path) -> list[str]:
    """What does not hold now for `file` (empty: it is whole and of its inputs' current generations)."""
    file = Path(file)
    side = sidecar_of(file)
    if not file.exists() or not side.exists():
        return []
    meta = storage.read_json(side)
    if not meta.get("generation"):  # written before generations existed
        return []
    found = []
    if meta.get("stamp") is not None and size_and_mtime(file) != meta["stamp"] and digest(file) != meta.get("digest"):
        found.append(f"{file.name} is newer than its sidecar {side.name} (a write is half done)")
    for name, wanted in (meta.get("inputs") or {}).items():
        source = file.parent / name
        if wanted is not None and generation(source) != wanted:
            found.append(f"{file.name} was computed from another {name} than the one there now")
        found += problems(source) if source != file else []
    return list(dict.fromkeys(found))


def check(ws: Layout, *files: Path) -> None:
    """Raise `StaleFile` unless every file in `files` (and what it was computed from) is of one generation."""
    found = [p for f in files for p in problems(f)]
    if not found:
        return
    writers = busy(ws.locks_dir)
    commands = sorted({REBUILT_BY.get(Path(f).name, "curate run") for f in files})
    if writers:
        then = f"{'; '.join(writers)} is updating the workspace: it will be whole when that finishes"
    else:
        then = (f"no run is updating it now (one was stopped before it finished?): run "
                f"`{' / '.join(commands)} -w {ws.path}` (or `curate run` again) to bring it up to date")
    raise StaleFile(f"{'; '.join(found)}. {then[0].upper()}{then[1:]}.", busy=bool(writers))


def load_checked(ws: Layout, files: Iterable[Path], load: Callable[[], T]) -> T:
    """`load()` between two checks of `files`: what it returns belongs to one generation (a write that
    lands while it loads is caught by the second check)."""
    files = [Path(f) for f in files]
    check(ws, *files)
    before = [size_and_mtime(f) for f in files] + [size_and_mtime(sidecar_of(f)) for f in files]
    value = load()
    after = [size_and_mtime(f) for f in files] + [size_and_mtime(sidecar_of(f)) for f in files]
    if before != after:
        check(ws, *files)  # names the writer; a write that completed cleanly in between loads next time
        raise StaleFile(f"{', '.join(f.name for f in files)} changed while being read: reload", busy=True)
    return value
