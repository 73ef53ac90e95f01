"""`curate embed`: embed every usable image; rows of unusable ones stay zero. Resumable."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from curate import storage
from curate.data.cache import image_cache
from curate.data.manifest import ok_mask
from curate.embed.encoder import embed_images, file_fingerprint, load_encoder
from curate.locks import locked
from curate.models import feature_dim
from curate.progress import Progress
from curate.workspace import Workspace, now


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
    rows = np.flatnonzero(ok_mask(manifest))
    dim = feature_dim(net)
    partial, partial_meta = ws.path / "embeddings.partial.npy", ws.path / "embeddings.partial.json"
    key = {"model": model_id, "rows": int(len(rows)), "n": int(len(manifest)), "d": dim}
    done = 0
    if partial.exists() and partial_meta.exists() and storage.read_json(partial_meta).get("key") == key:
        done = storage.read_json(partial_meta)["done"]
        packed = np.load(partial, mmap_mode="r+")
    else:
        packed = open_memmap(partial, mode="w+", dtype=np.float32, shape=(len(rows), dim))

    def checkpoint(n_done: int) -> None:
        if n_done % (batch_size * 16) == 0 or n_done == len(rows):
            packed.flush()
            storage.write_json(partial_meta, {"key": key, "done": n_done})

    norm = config["normalization"]
    embed_images(net, images, rows, norm["mean"], norm["std"], batch_size, progress=progress,
                 out=packed, done=done, on_chunk=checkpoint)
    full = np.zeros((len(manifest), dim), dtype=np.float32)
    full[rows] = packed
    storage.write_npy(ws.embeddings_file, full)
    storage.write_json(ws.sidecar(ws.embeddings_file), {"model": model_id, "model_file": str(encoder_file.resolve()),
                                                        "d": dim, "n": int(len(manifest)), "embedded": int(len(rows)),
                                                        "image_size": config["image_size"], "created": now()})
    partial.unlink(missing_ok=True)
    partial_meta.unlink(missing_ok=True)
    return full
