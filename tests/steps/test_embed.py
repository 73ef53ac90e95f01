"""Embedding: resumes after an interruption, and gives the same vectors as an uninterrupted run."""
import numpy as np
import pytest

from curate import storage
from curate.steps.embed import embed
from curate.steps.scan import scan


class Interrupt(Exception):
    pass


def test_embedding_resumes_where_it_stopped(built_workspace, small_images, tmp_path):
    model = built_workspace / "model" / "encoder.pt"
    ws, _ = scan(small_images, tmp_path / "ws")

    def crash_after(rows):
        def progress(done, total, info):
            if info.get("stage") == "embed" and done >= rows:
                raise Interrupt
        return progress

    with pytest.raises(Interrupt):
        embed(ws, model, batch_size=8, progress=crash_after(150))
    partial = storage.read_json(ws.path / "embeddings.partial.json")
    assert partial["done"] == 128  # last checkpoint: every 16 batches of 8
    assert not ws.embeddings_file.exists()  # nothing half-written is published

    seen = []
    resumed = embed(ws, model, batch_size=8, progress=lambda d, t, i: seen.append(d) if i.get("stage") == "embed" else None)
    assert seen[0] == 136  # the first batch after the checkpoint, not the first batch
    assert not (ws.path / "embeddings.partial.npy").exists()

    fresh_ws, _ = scan(small_images, tmp_path / "fresh")
    fresh = embed(fresh_ws, model, batch_size=8)
    assert np.allclose(resumed, fresh, atol=1e-5)
    assert np.allclose(np.linalg.norm(resumed, axis=1), 1, atol=1e-3)
