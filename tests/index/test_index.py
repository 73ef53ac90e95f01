"""FAISS search equals numpy exact search; the approximate index recalls most neighbours."""
import numpy as np
import pytest

from curate.index import build_index, choose_factory, exact_search, load_index, save_index, search


def _vectors(n, d=64, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    x = centres[rng.integers(0, 20, n)] + 0.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_flat_index_equals_exact_search(tmp_path):
    x = _vectors(3000)
    ids = np.arange(3000) * 3 + 7  # ids need not be row numbers
    index, meta = build_index(x, ids)
    assert meta["factory"] == choose_factory(3000) == "IDMap2,Flat"
    save_index(index, meta, tmp_path / "index.faiss")
    index = load_index(tmp_path / "index.faiss")
    q = x[:50]
    sims, got = search(index, q, 10)
    ref_sims, ref = exact_search(x, ids, q, 10)
    assert np.array_equal(got, ref)
    assert np.allclose(sims, ref_sims, atol=1e-5)


def test_ivf_index_recall(tmp_path):
    x = _vectors(20000, seed=1)
    ids = np.arange(20000)
    index, meta = build_index(x, ids, factory="IVF128,Flat")
    assert meta["nprobe"] >= 16
    save_index(index, meta, tmp_path / "ivf.faiss")
    index = load_index(tmp_path / "ivf.faiss")  # nprobe restored from the sidecar
    _, got = search(index, x[:200], 10)
    _, ref = exact_search(x, ids, x[:200], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, ref)])
    assert recall > 0.9


@pytest.mark.parametrize("n,expected", [(10, "IDMap2,Flat"), (100_000, "IDMap2,Flat"), (1_000_000, "IVF2048,Flat"),
                                        (10_000_000, "IVF8192_HNSW32,PQ256")])
def test_factory_by_size(n, expected):
    assert choose_factory(n, 512) == expected
