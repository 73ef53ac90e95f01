"""`curate scan`: build or refresh the manifest."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from curate.data.scan import ScanSummary, scan_folder
from curate.locks import locked
from curate.progress import Progress
from curate.workspace import Workspace


def scan(images: str | Path, ws_path: str | Path, progress: Progress | None = None, engine: str = "local",
         address: str | None = None) -> tuple[Workspace, ScanSummary]:
    """engine="ray" reads, hashes and verifies the new and changed files on a Ray cluster (`address`: see
    curate.ray_engine.RayOptions); the same scan decides which files those are and writes the manifest."""
    inspect_files = _engine(engine, address)
    ws = Workspace.create(ws_path, images)
    with locked(ws.locks_dir, "manifest", what="a scan or quality check"):  # read-modify-write of the manifest
        previous = ws.manifest() if ws.manifest_file.exists() else None
        manifest, summary = scan_folder(ws.root, previous, progress=progress, inspect_files=inspect_files)
        if summary.ok == 0:
            raise ValueError(f"no readable images under {ws.root} ({summary.line()}); "
                             "curate reads jpg, jpeg, png, webp, bmp, tif, tiff and gif")
        ws.save_manifest(manifest)
    return ws, summary


def _engine(name: str, address: str | None):
    """None (scan_folder's threads) for the local engine, else the ray engine's `inspect_files`."""
    if not ray_engine(name, address):
        return None
    from curate.ray_engine import inspect_files

    return partial(inspect_files, address=address)


def image_decoder(name: str, address: str | None):
    """None (the decode cache's threads) for the local engine, else the ray engine's `decode_files`."""
    if not ray_engine(name, address):
        return None
    from curate.ray_engine import decode_files

    return partial(decode_files, address=address)


def ray_engine(name: str, address: str | None) -> bool:
    """Whether `name` is the ray engine, checked before any work: a bad name, an --address without it, a
    missing Ray or a cluster that does not answer are errors here."""
    if name not in ("local", "ray"):
        raise ValueError(f"engine must be local or ray, not {name!r}")
    if name == "local":
        if address is not None:
            raise ValueError("--address needs --engine ray")
        return False
    from curate.ray_engine import check_address, import_ray

    import_ray()
    check_address(address)
    return True
