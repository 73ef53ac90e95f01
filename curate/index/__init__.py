"""FAISS indexes over embeddings: numpy in, numpy out, a JSON sidecar beside every saved index."""
from curate.index.faiss_index import build_index, choose_factory, exact_search, ivf_factory, load_index, save_index, search

__all__ = ["build_index", "choose_factory", "exact_search", "ivf_factory", "load_index", "save_index", "search"]
