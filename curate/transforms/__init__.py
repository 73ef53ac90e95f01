"""Batched, on-device view generation for SSL (no per-image PIL work in worker processes)."""
from curate.transforms.views import ViewConfig, make_views, normalize, siamese_views, to_float

__all__ = ["ViewConfig", "make_views", "normalize", "siamese_views", "to_float"]
