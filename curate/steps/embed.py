"""`curate embed`: embed every usable image; rows of unusable ones stay zero. Resumable, and incremental:
a row whose image and model are unchanged since the last embedding keeps its vector.

The step decides which rows need a vector and writes the files; an engine only computes the vectors of
those rows (`Engine.embed`: `local` in this process from the decode cache, `ray` on a Ray cluster; see
curate.engines). The engine is a property of the run, never a second copy of the step (DESIGN.md section 6).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from curate import storage
from curate.clock import now
from curate.data.manifest import content_keys, ok_mask
from curate.embed.encoder import file_fingerprint, load_encoder
from curate.engines import DEFAULT_ENGINE, EmbedJob, Engine, create_engine, describe_run
from curate.generations import write_sidecar
from curate.locks import locked
from curate.models import feature_dim
from curate.progress import Progress, staged
from curate.steps.options import RunOptions
from curate.workspace import Workspace


def _current_rows(ws: Workspace, model_id: str, dim: int, keys: np.ndarray) -> np.ndarray:
    """(N,) True where embeddings.npy already holds this model's vector of this row's current content."""
    current = np.zeros(len(keys), bool)
    sidecar, keys_file = ws.sidecar(ws.embeddings_file), ws.embedded_keys_file
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
          progress: Progress | None = None, engine: Engine | None = None) -> np.ndarray:
    """Embed every usable image into embeddings.npy ((N, D) float32, row = manifest id); one embedding run
    at a time per workspace.

    `engine` (default local) computes the vectors; it may load the encoder elsewhere than on `device`
    (`Engine.device`: ray's actors take a GPU when --gpus-per-actor asks for one).
    """
    engine = engine or create_engine(DEFAULT_ENGINE)
    with locked(ws.locks_dir, "embed", wait=False, what="an embedding run"):
        return _embed(ws, model, batch_size, engine.device(device), progress, engine)


def _embed(ws: Workspace, model: str | Path | None, batch_size: int, device: str,
           progress: Progress | None, engine: Engine) -> np.ndarray:
    encoder_file = Path(model) if model else ws.encoder_file
    net, config = load_encoder(encoder_file, device)
    model_id = file_fingerprint(encoder_file)
    manifest = ws.manifest()
    usable = np.flatnonzero(ok_mask(manifest))
    dim = feature_dim(net)
    keys = content_keys(manifest)
    kept = _current_rows(ws, model_id, dim, keys)  # rows whose stored vector is of this model and this content
    rows = usable[~kept[usable]]  # only these are embedded: a rerun after adding images embeds those
    partial, partial_meta = ws.partial_embeddings_file, ws.sidecar(ws.partial_embeddings_file)
    key = {"model": model_id, "rows": int(len(rows)), "n": int(len(manifest)), "d": dim}
    done = 0
    if not len(rows):  # every vector is current (an empty memmap cannot be mapped)
        packed = np.zeros((0, dim), np.float32)
    elif partial.exists() and partial_meta.exists() and storage.read_json(partial_meta).get("key") == key:
        done = storage.read_json(partial_meta)["done"]
        packed = np.load(partial, mmap_mode="r+")
    else:
        packed = open_memmap(partial, mode="w+", dtype=np.float32, shape=(len(rows), dim))
    saved = [done]

    def checkpoint(n_done: int) -> None:  # rows before n_done are final: a rerun resumes after them
        if n_done - saved[0] >= batch_size * 16 or (n_done == len(rows) and n_done != saved[0]):
            packed.flush()
            storage.write_json(partial_meta, {"key": key, "done": n_done})
            saved[0] = n_done

    engine_fields = {"engine": engine.name}  # the engine adds what the run used (ray: its actor count)
    if len(rows):
        engine_fields = engine.embed(EmbedJob(ws, manifest, rows, encoder_file, net, config, batch_size), packed, done,
                                checkpoint, progress)
    full = np.zeros((len(manifest), dim), dtype=np.float32)
    reused = usable[kept[usable]]
    if len(reused):
        full[reused] = ws.embeddings()[reused]
    full[rows] = packed
    stored = np.zeros_like(keys)  # 0: no vector for this row
    stored[usable] = keys[usable]
    storage.write_npy(ws.embeddings_file, full)
    storage.write_npy(ws.embedded_keys_file, stored)  # uint64 per row: the content (sha1 prefix) it embeds
    write_sidecar(ws.embeddings_file, {"model": model_id, "model_file": str(encoder_file.resolve()),
                                       "d": dim, "n": int(len(manifest)), "embedded": int(len(usable)),
                                       "newly_embedded": int(len(rows)), "reused": int(len(reused)),
                                       "image_size": config["image_size"], **engine_fields, "created": now()})
    partial.unlink(missing_ok=True)
    partial_meta.unlink(missing_ok=True)
    return full


@dataclass(frozen=True)
class EmbedSummary:
    embedded: int  # images embedded by this run
    reused: int  # vectors kept from the last embedding (same image content, same model)
    engine: str  # how the engine ran, in a few words ("on Ray, 2 encoder actors"; "" locally)
    dim: int
    seconds: float
    index: dict  # index.json's fields (factory, recall_at_10, nprobe, reached, recall_target)
    index_file: Path

    def lines(self) -> list[str]:
        kept = f", {self.reused:,} kept from the last embedding" if self.reused else ""
        if self.engine and self.embedded:
            kept += f" ({self.engine})"
        ix = self.index
        nprobe = f", nprobe {ix['nprobe']}" if ix.get("nprobe", 1) > 1 else ""
        out = [f"embedded {self.embedded:,} images{kept} ({self.dim}-d) in {self.seconds:.1f}s; index {ix['factory']} "
               f"(recall@10 {ix['recall_at_10']:.3f}{nprobe}) -> {self.index_file}"]
        if not ix.get("reached", True):
            out.append(f"note: the index reaches recall@10 {ix['recall_at_10']:.3f}, below --recall "
                       f"{ix['recall_target']}: give it more --index-memory")
        return out


def run(ws: Workspace, options: RunOptions, progress: Progress | None = None) -> EmbedSummary:
    """The embed step: embed what changed (on the options' engine), then (re)build the index."""
    from curate.index import parse_memory
    from curate.steps.index import build_workspace_index

    start = time.perf_counter()
    engine = create_engine(options.engine, options.engine_options)
    vectors = embed(ws, options.model, batch_size=options.embed_batch_size, progress=progress, engine=engine)
    index = build_workspace_index(ws, memory=parse_memory(options.index_memory), recall=options.recall,
                                  progress=staged(progress, "index", "vec"))
    meta = storage.read_json(ws.sidecar(ws.embeddings_file))
    return EmbedSummary(meta.get("newly_embedded", index["n"]), meta.get("reused", 0), describe_run(meta),
                        vectors.shape[1], time.perf_counter() - start, index, ws.index_file)
