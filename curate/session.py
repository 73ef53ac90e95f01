"""`open_workspace`: a read-mostly handle on a built workspace for scripts and the app."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

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

        return load_checked(self.path, [self.ws.embeddings_file], lambda: np.asarray(self.ws.embeddings()))

    @cached_property
    def index(self):
        """The FAISS index, refused when it was built from other embeddings than embeddings.npy holds now
        (an embedding run wrote new vectors and has not rebuilt the index yet, or was stopped in between)."""
        from curate.generations import load_checked
        from curate.index import load_index

        files = [self.ws.index_file, self.ws.embeddings_file]
        embeddings = self.embeddings
        # a compressed index re-scores from the embeddings: both must be of one generation
        return load_checked(self.path, files, lambda: load_index(self.ws.index_file, embeddings))

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

    def search(self, query: int | str | Path | np.ndarray, k: int = 10) -> pd.DataFrame:
        """Nearest images to an id, an image file, or a vector: a table of id, path, label, similarity, distance.

        A query id is left out of its own results.
        """
        from curate.index import search

        exclude = None
        if isinstance(query, (int, np.integer)):
            exclude = int(query)
            vector = self.embeddings[exclude]
            if not vector.any():
                raise ValueError(f"image {exclude} has no embedding (status: {self.manifest['status'].iloc[exclude]})")
        elif isinstance(query, (str, Path)) or hasattr(query, "read"):
            vector = self.embed_file(query)
        else:
            vector = np.asarray(query, dtype=np.float32)
        sims, ids = search(self.index, vector[None], k + (exclude is not None))
        keep = (ids[0] >= 0) & (ids[0] != (exclude if exclude is not None else -2))
        sims, ids = sims[0][keep][:k], ids[0][keep][:k]
        rows = self.manifest.iloc[ids]
        return pd.DataFrame({"id": ids, "path": rows["path"].to_numpy(), "label": rows["label"].to_numpy(),
                             "similarity": sims, "distance": np.sqrt(np.clip(2 - 2 * sims, 0, None))})

    def embed_file(self, image) -> np.ndarray:
        """(D,) embedding of an image file or file object outside (or inside) the workspace."""
        return self.embed_image(self.decode_for_embedding(image))

    def decode_for_embedding(self, image):
        """The image decoded (safely, reduced where the format allows) as large as embedding needs."""
        from curate.data.images import load_rgb

        return load_rgb(image, max_side=4 * self.encoder[1]["image_size"])

    def embed_image(self, img) -> np.ndarray:
        """(D,) embedding of a decoded PIL image (`decode_for_embedding`'s)."""
        from curate.data.images import fit_square
        from curate.embed import embed_images

        model, config = self.encoder
        pixels = fit_square(img, config["image_size"])
        norm = config["normalization"]
        return embed_images(model, pixels[None], np.array([0]), norm["mean"], norm["std"])[0]


def open_workspace(path: str | Path) -> OpenWorkspace:
    return OpenWorkspace(Workspace(Path(path)).require())
