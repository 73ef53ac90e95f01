"""Materialising a subset of images as a folder (copy / symlink / list) with a manifest CSV."""
from curate.export.folder import EXPORT_MODES, export_files

__all__ = ["EXPORT_MODES", "export_files"]
