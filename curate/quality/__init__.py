"""Duplicates, outliers and image-quality checks."""
from curate.quality.duplicates import exact_duplicates, groups_table, near_duplicates

__all__ = ["exact_duplicates", "groups_table", "near_duplicates"]
