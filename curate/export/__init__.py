"""Materialising a subset of images as a folder (copy / symlink / hardlink / list) or a zip, with
manifest CSV + parquet + JSON."""
from curate.export.folder import EXPORT_MODES, export_files, export_zip

__all__ = ["EXPORT_MODES", "export_files", "export_zip"]
