"""2-D maps of the embedding space (registered by name: umap, pca)."""
from curate.project.maps import PROJECTIONS, project_2d

__all__ = ["PROJECTIONS", "project_2d"]
