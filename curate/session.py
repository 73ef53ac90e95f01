"""`open_workspace`: a read-mostly handle on a built workspace for scripts and the app."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from curate.workspace import Workspace


@dataclass
class OpenWorkspace:
    """The manifest, embeddings and index of a workspace, loaded once, plus search."""

    ws: Workspace

    @property
    def path(self) -> Path:
        return self.ws.path

    @property
    def root(self) -> Path:
        return self.ws.root

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return self.ws.manifest()

    @cached_property
    def embeddings(self) -> np.ndarray:
        """(N, D) in memory, refused while embeddings.npy is newer than its sidecar (a write half done)."""
        from curate.generations import load_checked

        return load_checked(self.ws, [self.ws.embeddings_file], lambda: np.asarray(self.ws.embeddings()))

    @cached_property
    def index(self):
        """The FAISS index, refused when it was built from other embeddings than embeddings.npy holds now
        (an embedding run wrote new vectors and has not rebuilt the index yet, or was stopped in between)."""
        from curate.generations import load_checked
        from curate.index import load_index

        files = [self.ws.index_file, self.ws.embeddings_file]
        embeddings = self.embeddings
        # a compressed index re-scores from the embeddings: both must be of one generation
        return load_checked(self.ws, files, lambda: load_index(self.ws.index_file, embeddings))

    @cached_property
    def encoder(self):
        """The encoder the embeddings were made with (a workspace may embed with another's model), refused
        when that file has changed since (retrained): an upload must be embedded by the corpus's model."""
        from curate import storage
        from curate.embed import load_encoder
        from curate.embed.encoder import file_fingerprint

        sidecar = self.ws.sidecar(self.ws.embeddings_file)
        meta = storage.read_json(sidecar) if sidecar.exists() else {}
        model_file = Path(meta.get("model_file") or self.ws.encoder_file)
        if meta.get("model") and model_file.exists() and file_fingerprint(model_file) != meta["model"]:
            raise ValueError(f"{model_file} has changed since the embeddings were made (trained again?): run "
                             "`curate embed` so that searches and uploads use one model")
        return load_encoder(model_file)

    def search(self, query: int | str | Path | np.ndarray, k: int = 10, kind: str | None = None,
               where: str | None = None) -> pd.DataFrame:
        """Nearest items to an id, an image file, or a vector: a `results` table (id, path, label,
        similarity, distance, kind), best first. A query id is left out of its own results.

        `kind` (image, object, frame): which items to return; default the query item's own kind (an object
        finds objects), or for a file or vector `curate.data.items.default_kind`. `where`: only items for
        which this expression over the manifest's columns holds (`curate.data.where`). One query path with
        `similar`: the index proposes, the embeddings score (`curate.index.query.multi_search`).
        """
        from curate.data.items import kinds, resolve_kind
        from curate.index.query import multi_search

        exclude = None
        if isinstance(query, (int, np.integer)):
            exclude = int(query)
            vector = self.query_vectors([exclude])[0]
        elif isinstance(query, (str, Path)) or hasattr(query, "read"):
            vector = self.embed_file(query)
        else:
            vector = np.asarray(query, dtype=np.float32)
        found = kinds(self.manifest)
        if kind is None and exclude is not None:
            kind = str(found[exclude])
        wanted = (found == resolve_kind(self.manifest, kind)) & self.where_mask(where)
        sims, ids = multi_search(self.index, self.embeddings, vector[None], k=k,
                                 exclude=() if exclude is None else (exclude,), keep=wanted)
        return self.results(ids, sims)

    def similar(self, positives: Sequence[int] = (), negatives: Sequence[int] = (), vector: np.ndarray | None = None,
                mode: str = "mean", negative_weight: float = 1.0, k: int = 100, kind: str | None = None,
                where: str | None = None) -> pd.DataFrame:
        """The k images most like the `positives` ids (plus an outside image's (D,) `vector`) and least like
        the `negatives`, best first, the query images left out: a `results` table, its similarity the
        combined score of `curate.index.query.multi_search` (a plain cosine for a single positive).
        `kind`: which items to return; default the first positive's kind (an object finds objects), else
        `curate.data.items.default_kind`. `where`: as for `search`."""
        from curate.data.items import kinds, resolve_kind
        from curate.index.query import multi_search

        query = self.query_vectors(positives)  # checks the ids first
        found = kinds(self.manifest)
        if kind is None and len(positives):
            kind = str(found[int(positives[0])])
        keep = (found == resolve_kind(self.manifest, kind)) & self.where_mask(where)
        if vector is not None:
            query = np.vstack([query, np.asarray(vector, np.float32)[None]])
        sims, ids = multi_search(self.index, self.embeddings, query,
                                 self.query_vectors(negatives) if len(negatives) else None, k, mode, negative_weight,
                                 exclude=[*positives, *negatives], keep=keep)
        return self.results(ids, sims)

    def where_mask(self, where: str | None) -> np.ndarray:
        """(N,) bool: the manifest rows for which `where` holds (all for None); WhereError names a problem."""
        from curate.data.where import where_mask

        return where_mask(self.manifest, where)

    def query_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), D) embeddings of query images, refused (ValueError) for an id outside the manifest or
        an image without an embedding (skipped by the scan, or not embedded yet)."""
        vectors = self.embeddings
        for i in ids:
            if not 0 <= int(i) < len(vectors):
                raise ValueError(f"no image with id {i}: ids go from 0 to {len(vectors) - 1}")
            if not vectors[int(i)].any():
                raise ValueError(f"image {i} has no embedding (status: {self.manifest['status'].iloc[int(i)]}): "
                                 "leave it out of the query")
        return np.asarray(vectors[[int(i) for i in ids]], np.float32)

    def results(self, ids: np.ndarray, similarities: np.ndarray) -> pd.DataFrame:
        """The search result table, one row per id in the given order: id, path, label, similarity (cosine,
        or a query's combined score), distance (sqrt(2 - 2 similarity): the L2 distance of unit vectors)."""
        rows = self.manifest.iloc[ids]
        from curate.data.items import kinds

        return pd.DataFrame({"id": ids, "path": rows["path"].to_numpy(), "label": rows["label"].to_numpy(),
                             "similarity": similarities, "distance": np.sqrt(np.clip(2 - 2 * similarities, 0, None)),
                             "kind": kinds(rows)})

    def embed_file(self, image) -> np.ndarray:
        """(D,) embedding of an image file or file object outside (or inside) the workspace."""
        return self.embed_image(self.decode_for_embedding(image))

    def decode_for_embedding(self, image, box: tuple[float, float, float, float] | None = None):
        """The image decoded (safely, reduced where the format allows) as large as embedding needs; with
        `box` (x0, y0, x1, y1 in the image's pixels, EXIF orientation applied) the box's crop with context,
        as an object of the workspace is seen (`curate.data.sources.crop_with_context`)."""
        from curate.data.images import QUERY_MAX_PIXELS, load_rgb
        from curate.data.sources import crop_with_context

        if box is None:
            return load_rgb(image, max_side=4 * self.encoder[1]["image_size"], max_pixels=QUERY_MAX_PIXELS)
        return crop_with_context(load_rgb(image, max_pixels=QUERY_MAX_PIXELS), box)  # the box is in full pixels

    def embed_image(self, img) -> np.ndarray:
        """(D,) embedding of a decoded PIL image (`decode_for_embedding`'s)."""
        return self.embed_images([img])[0]

    def embed_images(self, images: Sequence) -> np.ndarray:
        """(B, D) embeddings of decoded PIL images, in one forward pass (a batch is far cheaper per image)."""
        from curate.data.images import fit_square
        from curate.embed import embed_images

        model, config = self.encoder
        pixels = np.stack([fit_square(img, config["image_size"]) for img in images])
        norm = config["normalization"]
        return embed_images(model, pixels, np.arange(len(pixels)), norm["mean"], norm["std"])


def open_workspace(path: str | Path) -> OpenWorkspace:
    return OpenWorkspace(Workspace(Path(path)).require())
