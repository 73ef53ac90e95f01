"""Representation quality the way the SSL literature measures it."""
from curate.evaluate.knn import weighted_knn

__all__ = ["weighted_knn"]
