"""Duplicates, outliers and image-quality checks."""
from curate.quality.duplicates import calibrated_threshold, exact_duplicates, groups_table, near_duplicates

__all__ = ["calibrated_threshold", "exact_duplicates", "groups_table", "near_duplicates"]
