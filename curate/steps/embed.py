"""`curate embed`: embed every usable image; rows of unusable ones stay zero. Resumable, and incremental:
a row whose image and model are unchanged since the last embedding keeps its vector."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from curate import storage
from curate.data.cache import image_cache
from curate.data.manifest import content_keys, ok_mask
from curate.embed.encoder import embed_images, file_fingerprint, load_encoder
from curate.locks import locked
from curate.models import feature_dim
from curate.progress import Progress
from curate.workspace import Workspace, now


EMBEDDED_KEYS = "embeddings_keys.npy"  # uint64 per row: the content (sha1 prefix) its vector was computed from


def _current_rows(ws: Workspace, model_id: str, dim: int, keys: np.ndarray) -> np.ndarray:
    """(N,) True where embeddings.npy already holds this model's vector of this row's current content."""
    current = np.zeros(len(keys), bool)
    sidecar, keys_file = ws.sidecar(ws.embeddings_file), ws.path / EMBEDDED_KEYS
    if not (ws.embeddings_file.exists() and sidecar.exists() and keys_file.exists()):
        return current
    meta = storage.read_json(sidecar)
    if meta.get("model") != model_id or meta.get("d") != dim:
        return current
    stored = np.load(keys_file)
    n = min(len(stored), len(keys), int(meta.get("n", 0)))
    current[:n] = (stored[:n] == keys[:n]) & (keys[:n] != 0)
    return current


def embed(ws: Workspace, model: str | Path | None = None, batch_size: int = 256, device: str = "auto",
          progress: Progress | None = None) -> np.ndarray:
    """Embed every usable image into embeddings.npy; one embedding run at a time per workspace."""
    with locked(ws.locks_dir, "embed", wait=False, what="an embedding run"):
        return _embed(ws, model, batch_size, device, progress)


def _embed(ws: Workspace, model: str | Path | None, batch_size: int, device: str,
           progress: Progress | None) -> np.ndarray:
    encoder_file = Path(model) if model else ws.encoder_file
    net, config = load_encoder(encoder_file, device)
    model_id = file_fingerprint(encoder_file)
    manifest = ws.manifest()
    images = image_cache(ws.root, manifest, config["image_size"], ws.cache_dir, progress=progress)
    usable = np.flatnonzero(ok_mask(manifest))
    dim = feature_dim(net)
    keys = content_keys(manifest)
    kept = _current_rows(ws, model_id, dim, keys)  # rows whose stored vector is of this model and this content
    rows = usable[~kept[usable]]  # only these are embedded: a rerun after adding images embeds those
    partial, partial_meta = ws.path / "embeddings.partial.npy", ws.path / "embeddings.partial.json"
    key = {"model": model_id, "rows": int(len(rows)), "n": int(len(manifest)), "d": dim}
    done = 0
    if not len(rows):  # every vector is current (an empty memmap cannot be mapped)
        packed = np.zeros((0, dim), np.float32)
    elif partial.exists() and partial_meta.exists() and storage.read_json(partial_meta).get("key") == key:
        done = storage.read_json(partial_meta)["done"]
        packed = np.load(partial, mmap_mode="r+")
    else:
        packed = open_memmap(partial, mode="w+", dtype=np.float32, shape=(len(rows), dim))

    def checkpoint(n_done: int) -> None:
        if n_done % (batch_size * 16) == 0 or n_done == len(rows):
            packed.flush()
            storage.write_json(partial_meta, {"key": key, "done": n_done})

    norm = config["normalization"]
    if len(rows):
        embed_images(net, images, rows, norm["mean"], norm["std"], batch_size, progress=progress,
                     out=packed, done=done, on_chunk=checkpoint)
    full = np.zeros((len(manifest), dim), dtype=np.float32)
    reused = usable[kept[usable]]
    if len(reused):
        full[reused] = ws.embeddings()[reused]
    full[rows] = packed
    stored = np.zeros_like(keys)  # 0: no vector for this row
    stored[usable] = keys[usable]
    storage.write_npy(ws.embeddings_file, full)
    storage.write_npy(ws.path / EMBEDDED_KEYS, stored)
    storage.write_json(ws.sidecar(ws.embeddings_file), {"model": model_id, "model_file": str(encoder_file.resolve()),
                                                        "d": dim, "n": int(len(manifest)), "embedded": int(len(usable)),
                                                        "newly_embedded": int(len(rows)), "reused": int(len(reused)),
                                                        "image_size": config["image_size"], "created": now()})
    partial.unlink(missing_ok=True)
    partial_meta.unlink(missing_ok=True)
    return full
