"""Duplicates, outliers and image-quality checks."""
from curate.quality.checks import (FLAG_COLUMNS, IMAGE_METRICS, METRIC_COLUMNS, QualityConfig, flags, measure,
                                   measure_file, shape_metrics)
from curate.quality.duplicates import calibrated_threshold, exact_duplicates, groups_table, near_duplicates

__all__ = ["FLAG_COLUMNS", "IMAGE_METRICS", "METRIC_COLUMNS", "QualityConfig", "calibrated_threshold",
           "exact_duplicates", "flags", "groups_table", "measure", "measure_file", "near_duplicates", "shape_metrics"]
