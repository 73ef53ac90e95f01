"""The `local` engine: this process. Threads read and decode the files (Pillow and hashlib release the
GIL); the step's own encoder embeds from the decoded-image cache. Every other engine is checked against it."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from curate.data.cache import decode_threaded, image_cache
from curate.data.scan import inspect_threaded
from curate.engines.base import EmbedJob, Engine, register


@register("local")
class LocalEngine(Engine):
    workers = 4  # file-reading threads

    def inspect_files(self, paths: list[Path]) -> Iterator[dict]:
        return inspect_threaded(paths, self.workers)

    def decode_files(self, paths: list[Path], size: int) -> Iterator[np.ndarray | None]:
        return decode_threaded(paths, size, self.workers)

    def embed(self, job: EmbedJob, out: np.ndarray, done: int, on_chunk, progress) -> dict:
        from curate.embed.encoder import embed_images  # torch: only when embedding

        images = image_cache(job.ws.root, job.manifest, job.config["image_size"], job.ws.cache_dir,
                             workers=self.workers, progress=progress, decode_files=self.decode_files)
        norm = job.config["normalization"]
        embed_images(job.net, images, job.rows, norm["mean"], norm["std"], job.batch_size, progress=progress,
                     out=out, done=done, on_chunk=on_chunk)
        return {"engine": self.name}
