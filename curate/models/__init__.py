"""Backbones (registered by name) and the small heads pretext tasks put on them."""
from curate.models.backbones import BACKBONES, BackboneSpec, build_backbone, feature_dim

__all__ = ["BACKBONES", "BackboneSpec", "build_backbone", "feature_dim"]
