"""FAISS indexes over embeddings: numpy in, numpy out, a JSON sidecar beside every saved index."""
from curate.index.faiss_index import (Reranked, build_index, choose_factory, exact_search, ivf_factory, load_index,
                                      save_index, search)
from curate.index.plan import IndexPlan, parse_memory, plan_index
from curate.index.tune import recall_at_k, tune_nprobe

__all__ = ["IndexPlan", "Reranked", "build_index", "choose_factory", "exact_search", "ivf_factory", "load_index",
           "parse_memory", "plan_index", "recall_at_k", "save_index", "search", "tune_nprobe"]
