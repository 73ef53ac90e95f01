"""Files of different generations are never mixed silently: an index that lags behind embeddings.npy,
and an encoder trained again after the corpus was embedded, are refused with what to run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from curate import storage
from curate.session import open_workspace
from curate.steps.embed import embed
from curate.steps.index import build_workspace_index
from curate.steps.map import build_projection


def test_an_index_older_than_the_embeddings_is_refused_until_rebuilt(built_workspace_copy):
    ws = built_workspace_copy
    assert len(open_workspace(ws.path).search(0, k=3)) == 3
    embed(ws)  # a new embedding run wrote embeddings.npy; the index is not rebuilt yet
    with pytest.raises(ValueError, match="computed from another embeddings.npy"):
        open_workspace(ws.path).search(0, k=3)
    build_workspace_index(ws)
    assert len(open_workspace(ws.path).search(0, k=3)) == 3


def test_uploads_are_refused_when_the_encoder_changed_after_embedding(built_workspace_copy, bundled_images):
    ws = built_workspace_copy
    embed(ws)  # the copy's embeddings name the copy's encoder (every vector is kept: same model, same images)
    build_workspace_index(ws)
    image = next(bundled_images.rglob("*.jpg"))
    assert len(open_workspace(ws.path).search(image, k=3)) == 3
    state = torch.load(ws.encoder_file, weights_only=True)
    state["conv1.weight"] = state["conv1.weight"] * 1.01  # trained again: other weights, same file
    torch.save(state, ws.encoder_file)
    with pytest.raises(ValueError, match="changed since the embeddings were made"):
        open_workspace(ws.path).search(image, k=3)
    embed(ws)  # a new model: every vector is computed again, then the index
    build_workspace_index(ws)
    result = open_workspace(ws.path).search(image, k=3)
    assert len(result) == 3 and np.isfinite(result["similarity"]).all()


# --- generation ids in every sidecar (curate.generations) ----------------------------------------
def derived_files(ws) -> list:
    return [ws.index_file, ws.projection_file, ws.duplicates_file, ws.path / "knn_graph.npz", ws.scores_file,
            ws.label_issues_file]


def complete(ws) -> None:
    """What `curate run` does after the embedding: index, map, duplicates, scores, label issues."""
    from curate.steps.dedup import dedup
    from curate.steps.label_issues import label_issues
    from curate.steps.scores import compute_scores

    build_workspace_index(ws)
    build_projection(ws)
    dedup(ws)
    compute_scores(ws)
    label_issues(ws)


def test_every_sidecar_names_its_generation_and_the_embeddings_it_was_computed_from(built_workspace_copy):
    from curate.generations import generation, problems

    ws = built_workspace_copy
    complete(ws)
    current = generation(ws.embeddings_file)
    assert current and storage.read_json(ws.sidecar(ws.embeddings_file))["digest"]
    gens = set()
    for file in derived_files(ws):
        meta = storage.read_json(ws.sidecar(file))
        assert meta["inputs"] == {"embeddings.npy": current}, file.name
        assert meta["stamp"][0] == file.stat().st_size and len(meta["digest"]) == 32
        gens.add(meta["generation"])
        assert problems(file) == [], file.name
    assert len(gens) == len(derived_files(ws))  # one id per write


def test_a_new_embedding_run_makes_every_derived_file_stale_until_it_is_rebuilt(built_workspace_copy):
    from curate.generations import StaleFile
    from curate.steps.label_issues import review_table
    from curate.steps.scores import image_table

    ws = built_workspace_copy
    complete(ws)
    embed(ws)  # same model, same images: every vector kept, but a new embeddings.npy (new generation)
    readers = {"index": lambda: open_workspace(ws.path).search(0, k=3), "map": ws.projection,
               "duplicates": ws.duplicates, "scores and flags": lambda: image_table(ws),
               "label review": lambda: review_table(ws)}
    for name, read in readers.items():
        with pytest.raises(StaleFile, match="computed from another embeddings.npy") as err:
            read()
        assert not err.value.busy and "No run is updating it now" in str(err.value), name
    complete(ws)
    assert len(open_workspace(ws.path).search(0, k=3)) == 3
    assert ws.projection().shape == (2000, 2)
    assert {"uniqueness", "duplicate", "label_issue"} <= set(image_table(ws).columns)
    flagged = int(pd.read_parquet(ws.label_issues_file)["label_issue"].sum())  # 0 when the encoder is too weak
    assert review_table(ws) is not None and len(review_table(ws)) == flagged


def test_a_data_file_newer_than_its_sidecar_is_a_half_done_write_and_a_copy_is_not(built_workspace_copy, tmp_path):
    import os
    import shutil

    from curate.generations import StaleFile, problems
    from curate.workspace import Workspace

    ws = built_workspace_copy
    # a plain copy gives every file a new mtime: the digest recognises the same bytes
    plain = tmp_path / "plain_copy"
    shutil.copytree(ws.path, plain, copy_function=shutil.copyfile)
    later = ws.projection_file.stat().st_mtime_ns + 10**9
    os.utime(plain / "projection_umap.npy", ns=(later, later))
    assert problems(plain / "projection_umap.npy") == [] and Workspace(plain).projection().shape == (2000, 2)
    # new bytes under the old sidecar: the writer was killed between the two renames
    storage.write_npy(ws.projection_file, ws.projection()[::-1].copy())
    assert problems(ws.projection_file) == ["projection_umap.npy is newer than its sidecar projection_umap.json "
                                            "(a write is half done)"]
    with pytest.raises(StaleFile, match="half done"):
        ws.projection()


def test_a_reader_names_the_writer_at_work(built_workspace_copy):
    import os

    from curate.generations import StaleFile
    from curate.locks import locked

    ws = built_workspace_copy
    embed(ws)
    with locked(ws.locks_dir, "embed", what="an embedding run"):
        with pytest.raises(StaleFile) as err:
            ws.projection()
    assert err.value.busy and f"Process {os.getpid()}" in str(err.value) and "is updating the workspace" in str(err.value)


def test_a_write_that_lands_while_a_file_is_read_is_caught(built_workspace_copy):
    from curate.generations import StaleFile, load_checked, write_sidecar

    ws = built_workspace_copy
    xy = ws.projection()

    def read_while_rewritten():
        value = np.load(ws.projection_file)
        storage.write_npy(ws.projection_file, xy + 1)  # a map step finishing meanwhile (data, then sidecar)
        write_sidecar(ws.projection_file, {"method": "auto"}, storage.read_json(ws.sidecar(ws.projection_file))["inputs"])
        return value
    with pytest.raises(StaleFile, match="changed while being read"):
        load_checked(ws, [ws.projection_file], read_while_rewritten)
    assert np.allclose(ws.projection(), xy + 1, equal_nan=True)  # the next read is of one generation again


def test_the_app_says_the_workspace_is_being_updated_instead_of_failing(monkeypatch, built_workspace_copy):
    from curate.locks import locked
    from tests.apptest_helpers import open_page, start

    ws = built_workspace_copy
    embed(ws)  # new vectors; index, map, duplicates not rebuilt yet
    at = start(monkeypatch, ws)
    for page in ("search", "explore", "duplicates"):
        at.switch_page(f"curate/ui/pages/{page}_page.py").run()
        assert not at.exception and not at.error, page
        assert any("being updated" in w.value and "curate " in w.value for w in at.warning), page
    with locked(ws.locks_dir, "embed", what="an embedding run"):
        at.run()
        assert any("is updating the workspace" in w.value for w in at.warning)
    complete(ws)
    for page in ("search_page.py", "explore_page.py", "duplicates_page.py", "labels_page.py"):
        open_page(at, page)
        assert not any("being updated" in w.value for w in at.warning), page
