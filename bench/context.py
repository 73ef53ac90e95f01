"""What the benchmarks of one run share: settings, device, a scratch folder, and inputs built once."""
from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from bench.config import BenchConfig
from bench.images import DecodedImages, build_decoded
from bench.vectors import clustered_vectors, describe, workspace_vectors
from curate.train.device import pick_device


class Context:
    """Lazily built shared inputs; use as a context manager so the scratch folder is removed."""

    def __init__(self, cfg: BenchConfig):
        self.cfg = cfg
        self.device: torch.device = pick_device(cfg.device)
        self._tmp = tempfile.TemporaryDirectory(prefix="curate-bench-")
        self.scratch = Path(self._tmp.name)

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> bool:
        self._tmp.cleanup()
        return False

    @cached_property
    def decoded(self) -> DecodedImages:
        """The cfg.n_images real images, scanned and decode-cached once (timed on first use)."""
        if not self.cfg.images.is_dir():
            raise FileNotFoundError(f"image folder {self.cfg.images} not found: pass --images DIR")
        return build_decoded(self.cfg.images, self.cfg.n_images, self.scratch / "decoded")

    @cached_property
    def vectors(self) -> np.ndarray:
        """(N, D) float32 L2-normalised pool for search/map/select: real if --workspace, else synthetic.

        Synthetic pools get cfg.queries extra rows at the end, drawn from the same clusters, to be
        held-out queries.
        """
        if self.cfg.workspace is not None:
            return workspace_vectors(self.cfg.workspace)
        n = max(self.cfg.search_n, self.cfg.kcenter_pool, *self.cfg.umap_sizes) + self.cfg.queries
        return clustered_vectors(n, seed=self.cfg.seed)

    @property
    def vectors_source(self) -> str:
        return describe(self.cfg.workspace)
