"""Comparing two encoders without labels (curate compare-models): Jaccard@k of their neighbour sets
on the images both workspaces embedded, the CLI report, and the Overview view."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from curate import storage
from curate.cli import main
from curate.evaluate.agreement import jaccard_rows, knn_ids, label_purity
from curate.steps.compare_models import common_images, compare_models
from curate.workspace import Workspace


def test_knn_ids_leave_the_query_out_and_jaccard_counts_shared_neighbours():
    x = np.array([[1, 0], [0.99, 0.14], [0.98, 0.2], [0, 1], [0.1, 0.99]], np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = knn_ids(x, np.array([0, 3]), 2)
    assert ids.tolist() == [[1, 2], [4, 2]]
    assert jaccard_rows(np.array([[1, 2], [4, 2]]), np.array([[2, 1], [4, 0]])).tolist() == [1.0, 1 / 3]
    assert jaccard_rows(np.array([[1, -1]]), np.array([[3, -1]])).tolist() == [0.0]
    labels = np.array(["a", "a", "b", "c", "c"], dtype=object)
    assert label_purity(ids, labels, np.array([0, 3])) == pytest.approx(2 / 4)


@pytest.fixture(scope="module")
def two_encoders(tmp_path_factory, built_workspace):
    """The built workspace (a trained encoder) and a copy embedded with random weights of the same
    architecture: the same images, two real encoders that see them differently."""
    from curate.embed.encoder import backbone_spec
    from curate.models.backbones import build_backbone
    from curate.steps.embed import embed

    root = tmp_path_factory.mktemp("compare")
    same = root / "same"
    shutil.copytree(built_workspace, same, ignore=shutil.ignore_patterns("checkpoint.pt"))
    other = root / "random"
    shutil.copytree(built_workspace, other, ignore=shutil.ignore_patterns("checkpoint.pt"))
    ws = Workspace(other)
    torch.manual_seed(1)
    config = ws.model_config()
    storage.save_torch(ws.encoder_file, build_backbone(backbone_spec(config)).state_dict())
    embed(ws)
    return Workspace(built_workspace), Workspace(same), ws


def test_an_encoder_agrees_with_itself_and_less_with_random_weights(two_encoders, tmp_path):
    trained, same, random = two_encoders
    itself = compare_models(trained, same, k=10, sample=300)
    assert itself["jaccard_mean"] == 1.0 and itself["identical_share"] == 1.0
    report = compare_models(trained, random, k=10, sample=300, show=5)
    pool = common_images(trained, random)
    assert report["common_images"] == len(pool) and report["queries"] == 300
    assert 0.0 <= report["jaccard_mean"] < 0.7 and sum(report["histogram"]["counts"]) == 300
    worst = report["disagreements"]
    assert len(worst) == 5 and [d["jaccard"] for d in worst] == sorted(d["jaccard"] for d in worst)
    manifest = trained.manifest()
    for d in worst:  # ids name the same file in both workspaces, and neighbours are real other images
        assert manifest["path"].iat[d["id_a"]] == random.manifest()["path"].iat[d["id_b"]] == d["path"]
        assert len(d["neighbours_a"]) == len(d["neighbours_b"]) == 10 and d["id_a"] not in d["neighbours_a"]
    assert set(report["label_purity"]) == {"a", "b"}  # the bundled sample has class folders
    # the same neighbours by hand for the worst query: exact search among the shared images
    x = np.asarray(trained.embeddings())[pool["id_a"].to_numpy()]
    q = int(np.flatnonzero(pool["id_a"].to_numpy() == worst[0]["id_a"])[0])
    order = np.argsort(-(x @ x[q]), kind="stable")
    assert set(pool["id_a"].to_numpy()[[i for i in order if i != q][:10]]) == set(worst[0]["neighbours_a"])


def test_compare_models_cli_writes_the_report(two_encoders, tmp_path, capsys):
    trained, _, random = two_encoders
    out = tmp_path / "cmp.json"
    assert main(["compare-models", "-w", str(trained.path), "-w", str(random.path), "-k", "5", "--sample", "100",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert f"mean {report['jaccard_mean']:.3f}" in printed and report["k"] == 5 and report["queries"] == 100
    assert main(["compare-models", "-w", str(trained.path)]) == 2
    assert "two workspaces" in capsys.readouterr().err


def test_a_workspace_without_embeddings_is_refused(two_encoders, tmp_path, small_images):
    from curate.steps.scan import scan

    trained, _, _ = two_encoders
    other, _ = scan(small_images, tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="no embeddings"):
        compare_models(trained, other)


def test_the_overview_compares_with_another_workspace(two_encoders, monkeypatch):
    from tests.apptest_helpers import assert_clean, start

    trained, _, random = two_encoders
    at = start(monkeypatch, trained)
    assert_clean(at)
    form_input = next(t for t in at.text_input if t.label == "Other workspace folder")
    form_input.set_value(str(random.path))
    next(n for n in at.number_input if n.label == "Query images").set_value(200)
    next(b for b in at.button if b.label == "Compare").click().run()
    assert_clean(at)
    shown = {m.label: m.value for m in at.metric}
    expected = compare_models(trained, random, k=10, sample=200)
    assert shown["Mean Jaccard@10"] == f"{expected['jaccard_mean']:.3f}"
    assert shown["Images compared"] == f"200 of {expected['common_images']:,}"
    worst = expected["disagreements"][0]
    assert any(f"#{worst['id_a']} `{worst['path']}`" in c.value for c in at.caption)
    next(t for t in at.text_input if t.label == "Other workspace folder").set_value("/no/such/workspace")
    next(b for b in at.button if b.label == "Compare").click().run()
    assert any("/no/such/workspace" in e.value for e in at.error)  # a clear message, not a traceback
