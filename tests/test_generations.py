"""Files of different generations are never mixed silently: an index that lags behind embeddings.npy,
and an encoder trained again after the corpus was embedded, are refused with what to run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from curate.session import open_workspace
from curate.steps.embed import embed
from curate.steps.index import build_workspace_index


def test_an_index_older_than_the_embeddings_is_refused_until_rebuilt(built_workspace_copy):
    ws = built_workspace_copy
    assert len(open_workspace(ws.path).search(0, k=3)) == 3
    embed(ws)  # a new embedding run wrote embeddings.npy; the index is not rebuilt yet
    with pytest.raises(ValueError, match="built from older embeddings"):
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
