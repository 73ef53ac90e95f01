"""Embedding images with a trained (or any compatible) encoder."""
from curate.embed.encoder import embed_images, load_encoder

__all__ = ["embed_images", "load_encoder"]
