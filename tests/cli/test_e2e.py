"""End to end through the CLI on real images: run -> search -> select -> dedup -> export -> eval -> embed elsewhere."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from curate.cli import main
from curate.session import open_workspace

pytestmark = pytest.mark.slow

CONTRACT_FILES = ["workspace.json", "manifest.parquet", "embeddings.npy", "embeddings.json", "index.faiss", "index.json",
                  "projection_umap.npy", "model/encoder.pt", "model/config.json", "duplicates.parquet"]


@pytest.fixture(scope="module")
def cli_workspace(tmp_path_factory, bundled_images):
    ws = tmp_path_factory.mktemp("cli") / "ws"
    assert main(["run", str(bundled_images), "-w", str(ws), "--epochs", "0.3", "--batch-size", "128",
                 "--select", "kcenter:50:diverse_50"]) == 0
    return ws


def test_run_writes_every_contract_file(cli_workspace):
    for name in CONTRACT_FILES:
        assert (cli_workspace / name).exists(), name
    manifest = pd.read_parquet(cli_workspace / "manifest.parquet")
    emb = np.load(cli_workspace / "embeddings.npy")
    assert emb.shape == (2000, 512) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-3)
    assert set(manifest.label) == {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    assert json.loads((cli_workspace / "index.json").read_text())["metric"] == "inner_product"
    assert np.isfinite(np.load(cli_workspace / "projection_umap.npy")).all()
    config = json.loads((cli_workspace / "model/config.json").read_text())
    assert config["holdout"]["fraction"] == 0.1 and config["tasks"][0]["name"] == "simclr"
    # `run` also ran the quality checks and the embedding scores
    assert {"sharpness", "blurry", "grayscale"} <= set(manifest.columns) and manifest["sharpness"].notna().all()
    scores = pd.read_parquet(cli_workspace / "scores.parquet")
    assert len(scores) == 2000 and scores["uniqueness"].notna().all() and scores["outlier"].sum() < 200
    issues = pd.read_parquet(cli_workspace / "label_issues.parquet")  # and, the images being labelled, label issues
    assert len(issues) == 2000 and set(issues["given"]) == set(manifest.label)
    assert len(pd.read_parquet(cli_workspace / "selections" / "diverse_50.parquet")) == 50  # --select


def test_quality_thresholds_and_scores_from_the_cli(cli_workspace, capsys):
    ws = str(cli_workspace)
    sharpness = pd.read_parquet(cli_workspace / "manifest.parquet")["sharpness"]
    cut = float(sharpness.quantile(0.25))
    assert main(["quality", "-w", ws, "--blurry", str(cut)]) == 0
    assert "blurry" in capsys.readouterr().out
    manifest = pd.read_parquet(cli_workspace / "manifest.parquet")
    assert manifest["blurry"].sum() == (sharpness < cut).sum() > 0
    assert json.loads((cli_workspace / "quality.json").read_text())["config"]["blurry"] == cut
    assert main(["quality", "-w", ws]) == 0  # a rerun keeps the saved thresholds
    assert pd.read_parquet(cli_workspace / "manifest.parquet")["blurry"].sum() == manifest["blurry"].sum()
    assert main(["scores", "-w", ws, "-k", "5"]) == 0
    assert "outliers" in capsys.readouterr().out
    assert json.loads((cli_workspace / "scores.json").read_text())["k"] == 5


def test_search_by_id_and_by_image(cli_workspace, bundled_images, capsys):
    assert main(["search", "-w", str(cli_workspace), "--id", "5", "-k", "4"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 5 and "distance" in out[0]
    image = sorted((bundled_images / "cat").glob("*.jpg"))[0]
    assert main(["search", "-w", str(cli_workspace), "--image", str(image), "-k", "3"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert rows[0].split()[1] == f"cat/{image.name}"  # the image itself is its own nearest neighbour
    assert float(rows[0].split()[-1]) < 0.05


def test_select_dedup_export(cli_workspace, tmp_path, capsys):
    ws = str(cli_workspace)
    assert main(["select", "-w", ws, "--n", "50", "--strategy", "kcenter", "--name", "pick"]) == 0
    sel = pd.read_parquet(cli_workspace / "selections/pick.parquet")
    assert list(sel.columns) == ["id", "rank", "score"] and len(sel) == 50 and sel["rank"].tolist() == list(range(50))
    meta = json.loads((cli_workspace / "selections/pick.json").read_text())
    assert meta["strategy"] == "kcenter" and meta["seed"] == 0 and meta["metrics"]["coverage_radius"] > 0
    assert main(["dedup", "-w", ws, "--threshold", "0.99"]) == 0
    assert "groups" in capsys.readouterr().out
    out = tmp_path / "export"
    assert main(["export", "-w", ws, "--selection", "pick", "--to", str(out), "--mode", "copy"]) == 0
    files = [p for p in out.rglob("*.jpg")]
    assert len(files) == 50 and all(p.parent.parent == out for p in files)  # class sub-folders kept
    table = pd.read_csv(out / "manifest.csv")
    assert len(table) == 50 and set(table.id) == set(sel.id)


def test_select_with_constraints_tags_and_zip_export(cli_workspace, tmp_path, capsys):
    import zipfile
    ws = str(cli_workspace)
    assert main(["tag", "-w", ws, "bad", "--ids", "0,1,2,3"]) == 0
    assert main(["tag", "-w", ws, "bad", "--ids", "3", "--remove"]) == 0
    tags = pd.read_parquet(cli_workspace / "tags.parquet")
    assert sorted(tags.loc[tags.tag == "bad", "id"]) == [0, 1, 2]
    assert main(["select", "-w", ws, "--n", "0.5", "--strategy", "random", "--balance", "label", "--exclude",
                 "tag:bad", "--include", "pick", "--label", "cat", "--label", "dog", "--dedup", "--name", "pets"]) == 0
    assert "selection 'pets'" in capsys.readouterr().out
    sel = pd.read_parquet(cli_workspace / "selections/pets.parquet")
    pick = pd.read_parquet(cli_workspace / "selections/pick.parquet")
    assert set(pick.id) <= set(sel.id) and not set(sel.id) & {0, 1, 2}
    meta = json.loads((cli_workspace / "selections/pets.json").read_text())
    assert meta["request"]["balance"] == "label" and meta["request"]["include"] == ["pick"]
    assert main(["select", "-w", ws, "--n", "5", "--param", "nope"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    # the default strategy, auto, ranks 20 picks by typiclust and names the selection after it
    assert main(["select", "-w", ws, "--n", "20"]) == 0
    assert "selection 'typiclust_20': 20 of" in capsys.readouterr().out
    meta = json.loads((cli_workspace / "selections/typiclust_20.json").read_text())
    assert meta["strategy"] == "typiclust" and meta["request"]["strategy"] == "auto"
    # a parameter the strategy does not take is refused by name; auto checks the strategy it picked
    assert main(["select", "-w", ws, "--n", "5", "--strategy", "kcenter", "--param", "clusters=3"]) == 2
    assert "kcenter takes no parameter 'clusters'" in capsys.readouterr().err
    assert main(["select", "-w", ws, "--n", "12", "--param", "clusters=3", "--name", "three"]) == 0
    assert json.loads((cli_workspace / "selections/three.json").read_text())["parameters"] == {"clusters": 3}
    target = tmp_path / "pets.zip"
    assert main(["export", "-w", ws, "--selection", "pets", "--to", str(target), "--mode", "zip"]) == 0
    with zipfile.ZipFile(target) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".jpg")]) == len(sel)
        assert json.loads(zf.read("manifest.json"))["provenance"]["selection"] == "pets"


def test_eval_reports_knn_against_random_weights(cli_workspace):
    assert main(["eval", "-w", str(cli_workspace), "--quick"]) == 0
    report = json.loads((cli_workspace / "reports/eval.json").read_text())
    assert report["test_images"] > 100 and report["classes"] == 10
    assert 0.1 < report["knn_top1"] <= 1 and 0.0 < report["knn_top1_random_init"] <= 1


def test_embed_another_folder_with_existing_model(cli_workspace, small_images, tmp_path):
    ws2 = tmp_path / "ws2"
    assert main(["embed", str(small_images), "-w", str(ws2), "--model", str(cli_workspace / "model/encoder.pt")]) == 0
    ows = open_workspace(ws2)
    assert ows.embeddings.shape == (200, 512) and ows.index.ntotal == 200
    assert not (ws2 / "model").exists()
    hits = ows.search(3, k=5)
    assert len(hits) == 5 and 3 not in hits.id.tolist()


def test_embedding_rows_follow_ids_not_file_order(cli_workspace, small_images, tmp_path):
    """Row i of embeddings.npy is manifest id i, also when a rescan adds files that sort first."""
    images = tmp_path / "images"
    shutil.copytree(small_images, images)
    ws2 = tmp_path / "ws2"
    model = str(cli_workspace / "model/encoder.pt")
    assert main(["embed", str(images), "-w", str(ws2), "--model", model]) == 0
    (images / "aaa").mkdir()
    shutil.copy(sorted((images / "ship").glob("*.jpg"))[0], images / "aaa" / "first.jpg")
    assert main(["embed", str(images), "-w", str(ws2), "--model", model]) == 0
    ows = open_workspace(ws2)
    new_id = int(ows.manifest.index[ows.manifest.path == "aaa/first.jpg"][0])
    assert new_id == 200
    rng = np.random.default_rng(0)
    for i in [new_id, *rng.choice(200, 5, replace=False)]:
        direct = ows.embed_file(ows.ws.image_path(i))
        assert float(direct @ ows.embeddings[i]) > 0.99, i
