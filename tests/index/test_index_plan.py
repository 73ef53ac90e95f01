"""The index is chosen from N, D and a memory budget, tuned to a recall target, and a compressed
index re-scores its candidates from the stored vectors; a workspace index records all of it."""
import numpy as np
import pytest

from curate.index import Reranked, build_index, exact_search, load_index, parse_memory, plan_index, save_index, search
from curate.index.plan import ivf_lists
from curate.index.tune import recall_at_k, tune_nprobe


def _clustered(n, d=64, clusters=50, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _recall(index, x, ids, queries=200, k=10):
    _, got = search(index, x[:queries], k)
    _, ref = exact_search(x, ids, x[:queries], k)
    return recall_at_k(got, ref, k)


@pytest.mark.parametrize("text,expected", [("4G", 4 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29), (1000, 1000),
                                           ("2048", 2048)])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


def test_parse_memory_refuses_nonsense():
    with pytest.raises(ValueError, match="4G"):
        parse_memory("four gigs")


def test_plan_follows_size_and_budget():
    assert plan_index(50_000, 512).kind == "flat"
    ivf = plan_index(1_000_000, 512)
    assert ivf.kind == "ivf" and ivf.factory == f"IVF{ivf_lists(1_000_000)},Flat" and ivf.bytes < 4 << 30
    big = plan_index(10_000_000, 512)  # 19 GiB as floats: compressed, with an HNSW graph over the centres
    assert big.kind == "ivf_pq" and "HNSW" in big.factory and big.bytes <= 4 << 30
    tight = plan_index(10_000_000, 512, parse_memory("1G"))  # a smaller budget: smaller codes
    assert int(tight.factory.rsplit("PQ", 1)[1]) < int(big.factory.rsplit("PQ", 1)[1]) and tight.bytes <= 1 << 30
    assert plan_index(1_000_000, 128, parse_memory("100M")).kind == "ivf_pq"
    with pytest.raises(ValueError, match="--index-memory"):
        plan_index(10_000_000, 512, parse_memory("10M"))


def test_chunked_build_from_rows_equals_aligned_build():
    x = _clustered(3000)
    rows = np.arange(0, 3000, 2)  # ids are rows of a larger array (the workspace's embeddings.npy)
    a, _ = build_index(x, rows, "IDMap2,Flat", rows=rows)
    b, _ = build_index(x[rows], rows, "IDMap2,Flat")
    sa, ia = search(a, x[:20], 5)
    sb, ib = search(b, x[:20], 5)
    assert np.array_equal(ia, ib) and np.allclose(sa, sb)


def test_tuning_reaches_the_recall_target_with_the_fewest_partitions():
    x = _clustered(20_000)
    ids = np.arange(20_000)
    index, meta = build_index(x, ids, "IVF256,Flat")
    tuned = tune_nprobe(index, x, ids, params=meta, target=0.95, queries=300)
    assert tuned["reached"] and tuned["recall_at_10"] >= 0.95
    tries = tuned["tuning"]
    assert tries[-1]["nprobe"] == tuned["nprobe"] and all(t["recall"] < 0.95 for t in tries[:-1])
    assert _recall(index, x, ids) >= 0.93  # the tuned setting holds on other queries (and includes self)
    looser = tune_nprobe(index, x, ids, params=meta, target=0.5, queries=300)
    assert looser["nprobe"] < tuned["nprobe"]


def test_compressed_index_reranked_from_stored_vectors(tmp_path):
    x = _clustered(12_000, d=64)
    ids = np.arange(12_000)
    index, meta = build_index(x, ids, "IVF64,PQ8")
    assert meta["rerank"] > 1
    tuned = tune_nprobe(index, x, ids, params=meta, target=0.9, queries=200)
    save_index(index, tuned, tmp_path / "pq.faiss")
    plain = load_index(tmp_path / "pq.faiss")  # no vectors given: codes alone, approximate scores
    reranked = load_index(tmp_path / "pq.faiss", x)
    assert isinstance(reranked, Reranked)
    assert _recall(reranked, x, ids) >= 0.88 > _recall(plain, x, ids)
    sims, got = search(reranked, x[:5], 3)
    assert np.allclose(sims, np.einsum("qkd,qd->qk", x[got], x[:5]), atol=1e-5)  # exact scores, best first
    assert (np.diff(sims, axis=1) <= 1e-6).all()


def test_workspace_index_is_planned_tuned_and_recorded(built_workspace_copy):
    from curate import storage
    from curate.session import open_workspace
    from curate.steps.index import build_workspace_index, indexed_rows

    ws = built_workspace_copy
    meta = build_workspace_index(ws, factory="IVF32,PQ16")  # forced: the bundled sample alone would be flat
    saved = storage.read_json(ws.sidecar(ws.index_file))
    assert saved["factory"] == "IVF32,PQ16" and saved["plan"] == "given" and saved["rerank"] > 1
    assert saved["recall_at_10"] == meta["recall_at_10"] >= 0.95 and saved["tuning"] and saved["bytes"] > 0
    session = open_workspace(ws.path)
    assert isinstance(session.index, Reranked)
    x, ids = np.asarray(ws.embeddings()), indexed_rows(ws)
    _, got = search(session.index, x[ids[:100]], 10)
    _, ref = exact_search(x[ids], ids, x[ids[:100]], 10)
    assert recall_at_k(got, ref, 10) >= 0.9
    meta = build_workspace_index(ws)  # the automatic choice for 2,000 images
    assert meta["factory"] == "IDMap2,Flat" and meta["recall_at_10"] == 1.0 and "exact" in meta["plan"]
