"""Representation quality the way the SSL literature measures it (DESIGN.md §5).

One concept per module, arrays in and numbers out: knn, linear_probe, clustering, layers,
invariance, pretext, speed; protocol composes them over a held-out split; plots draws the report.
"""
from curate.evaluate.knn import weighted_knn
from curate.evaluate.linear_probe import linear_probe

__all__ = ["linear_probe", "weighted_knn"]
