"""The evaluation protocol: linear probe, k-means NMI/ARI, per-layer features, invariance, pretext
accuracy and plots against known answers, then `curate eval` end to end on a real workspace."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from curate.evaluate import plots
from curate.evaluate.clustering import kmeans_scores
from curate.evaluate.invariance import augmentation_invariance, held_out_augmentations, relative_invariance
from curate.evaluate.layers import has_stages, stage_features
from curate.evaluate.linear_probe import fit_logistic, linear_probe
from curate.evaluate.pretext import pretext_scores
from curate.evaluate.summary import summary_table
from curate.models import BackboneSpec, build_backbone
from curate.pretext import MultiTask, TaskSpec
from curate.transforms import normalize, to_float

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[2]


def blobs(n: int, classes: int, dim: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points around `classes` random unit centres (noise std `spread`), and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, classes, n)
    return (centres[y] + spread * rng.normal(size=(n, dim))).astype(np.float32), y


def assert_png(path) -> None:
    assert path is not None and path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as img:
        img.verify()


# --- linear probe --------------------------------------------------------------------------------
def test_linear_probe_separates_separable_classes():
    x, y = blobs(1200, 5, 32, spread=0.05)
    result = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:])
    assert result.top1 >= 0.99
    assert set(result.val_top1) == {1e-1, 1e-2, 1e-3, 1e-4, 1e-5} and result.weight_decay in result.val_top1


def test_linear_probe_is_at_chance_on_random_labels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 64)).astype(np.float32)
    y = rng.integers(0, 4, 1500)
    assert abs(linear_probe(x[:1000], y[:1000], x[1000:], y[1000:]).top1 - 0.25) < 0.07


def test_linear_probe_works_from_a_handful_of_labels():
    """Selection lift trains on n = 10 labels: k-fold weight-decay choice, unseen classes allowed."""
    x, y = blobs(400, 5, 32, spread=0.1, seed=2)
    train = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(5)])  # 2 labels per class
    assert linear_probe(x[train], y[train], x[200:], y[200:]).top1 > 0.9
    one_class = np.flatnonzero(y == 0)[:3]  # a single class seen: it predicts that class, no crash
    assert linear_probe(x[one_class], y[one_class], x[200:], y[200:]).top1 == pytest.approx((y[200:] == 0).mean())


def test_fit_logistic_reaches_the_regularised_optimum():
    """The hand-written gradient is right: autograd finds (almost) no gradient at the solution."""
    x, y = blobs(300, 3, 8, spread=0.5, seed=3)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = fit_logistic(x, y, 3, weight_decay=1e-2, max_iter=200)
    w, b = model.weight.clone().requires_grad_(True), model.bias.clone().requires_grad_(True)
    z = (x - model.mean) / model.std
    loss = F.cross_entropy(z @ w + b, y) + 0.5 * 1e-2 * w.pow(2).sum()
    loss.backward()
    assert w.grad.abs().max() < 1e-4 and b.grad.abs().max() < 1e-4


# --- clustering --------------------------------------------------------------------------------
def test_kmeans_scores_are_perfect_on_separated_blobs():
    x, y = blobs(1000, 6, 16, spread=0.02, seed=4)
    scores = kmeans_scores(x, y, seeds=(0, 1, 2))
    assert scores.k == 6 and scores.nmi == pytest.approx(1.0) and scores.ari == pytest.approx(1.0)


def test_kmeans_scores_are_near_zero_for_random_labels():
    x, _ = blobs(2000, 8, 16, spread=0.02, seed=5)
    scores = kmeans_scores(x, np.random.default_rng(5).integers(0, 8, 2000))
    assert scores.nmi < 0.02 and abs(scores.ari) < 0.01


# --- per-layer features --------------------------------------------------------------------------
def test_stage_features_of_resnet18():
    torch.manual_seed(0)
    model = build_backbone(BackboneSpec("resnet18", "small_pool")).eval()
    x = normalize(torch.rand(2, 3, 32, 32))
    with torch.no_grad():
        feats = stage_features(model, x)
        embedding = model(x)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "layer1": (2, 64), "layer2": (2, 128), "layer3": (2, 256), "layer4": (2, 512)}
    torch.testing.assert_close(feats["layer4"], embedding)  # layer4 pooled is the embedding itself


def test_non_resnet_backbones_have_no_stages():
    vit = build_backbone(BackboneSpec("vit_tiny", "p4", 32))
    assert not has_stages(vit)
    with pytest.raises(TypeError, match="no ResNet stages"):
        stage_features(vit, torch.zeros(1, 3, 32, 32))


# --- invariance ----------------------------------------------------------------------------------
def tiny_encoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()).eval()


def test_invariance_to_the_identity_is_one():
    images = np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    net = tiny_encoder()
    sims = augmentation_invariance(net, images, {"identity": lambda x, g: x, **held_out_augmentations(16)},
                                   batch_size=16)
    assert sims["identity"] == pytest.approx(1.0, abs=1e-5)
    assert set(sims) == {"identity", "crop_flip", "colour_jitter", "greyscale", "blur", "random_pairs"}
    assert all(-1.0 <= v <= 1.0 + 1e-6 for v in sims.values()) and sims["random_pairs"] < 1.0
    rel = relative_invariance(sims)
    assert rel["identity"] == pytest.approx(1.0, abs=1e-4) and "random_pairs" not in rel


def test_relative_invariance_hand_example():
    assert relative_invariance({"crop": 0.9, "random_pairs": 0.6}) == {"crop": pytest.approx(0.75)}


# --- pretext accuracy ----------------------------------------------------------------------------
def test_pretext_scores_use_the_checkpoint_heads():
    """Rotation accuracy from the rebuilt task equals the trained task's own on the same views."""
    torch.manual_seed(0)
    backbone = build_backbone(BackboneSpec("resnet18", "small_pool"))
    specs = [TaskSpec("rotation"), TaskSpec("simclr")]
    tasks = MultiTask(specs, backbone, 32)
    with torch.no_grad():  # a head that is not the freshly initialised one
        tasks.tasks["rotation"].head[-1].bias.copy_(torch.tensor([100.0, 0.0, 0.0, 0.0]))
    images = np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    backbone.eval()
    scores, notes = pretext_scores(backbone, specs, tasks.state_dict(), images, np.arange(24), batch_size=24)
    task = tasks.tasks["rotation"].eval()
    with torch.no_grad():
        views, k = task.build_views(to_float(torch.from_numpy(images)), torch.Generator().manual_seed(0))
        expected = task.loss(task(backbone, views), k)["accuracy"].item()
    assert scores["rotation"]["accuracy"] == pytest.approx(expected)
    assert expected == pytest.approx((k == 0).float().mean().item())  # the biased head always says 0 degrees
    assert "loss" in scores["simclr"] and "accuracy" not in scores["simclr"] and "simclr" in notes


# --- plots and summary -----------------------------------------------------------------------------
def test_plots_are_valid_pngs(tmp_path):
    log = [{"step": s, "loss": 5 - s / 10, "rotation/loss": 1.4 - s / 50, "rotation/accuracy": s / 40}
           for s in (1, 10, 20)]
    assert_png(plots.plot_training_curves(log, tmp_path / "curves.png"))
    assert_png(plots.plot_layer_probes({"layer1": 0.3, "layer2": 0.5}, tmp_path / "layers.png", chance=0.1))
    xy = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    xy[3] = np.nan  # an image without an embedding
    labels = np.array(["cat", "dog", None] * 10, dtype=object)
    assert_png(plots.plot_embedding_map(xy, labels, tmp_path / "map.png"))
    assert_png(plots.plot_summary({"kNN": 0.6, "linear probe": 0.7}, {"kNN": 0.3}, tmp_path / "summary.png"))
    assert plots.plot_training_curves([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_summary_table_lists_trained_and_random_figures():
    report = {"knn_top1": 0.5, "knn_top1_random_init": 0.25, "linear_probe_top1": 0.625, "kmeans_nmi": 0.4,
              "kmeans_ari": 0.2, "layer_probe_top1": {"layer1": 0.3}, "pretext": {"rotation": {"accuracy": 0.9}},
              "invariance": {"blur": 0.9, "random_pairs": 0.5}, "invariance_relative": {"blur": 0.8},
              "speed": {"embed_images_per_s": 1234.4, "peak_rss_mb": 800.0}}
    table = summary_table(report)
    assert "kNN top-1" in table and "50.0%" in table and "25.0%" in table and "62.5%" in table
    assert "probe layer1" in table and "rotation accuracy" in table and "1,234 img/s" in table
    assert "0.900 (rel 0.80)" in table


# --- end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluated(built_workspace, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the shared workspace after a full `curate eval`, and what the command printed."""
    from curate.cli import main

    ws = tmp_path_factory.mktemp("eval") / "ws"
    shutil.copytree(built_workspace, ws)  # the fixture is shared and read-only; eval writes reports/
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", "-w", str(ws), "--finetune-steps", "20"]) == 0
    return ws, out.getvalue()


@pytest.mark.slow
def test_curate_eval_writes_the_whole_report(evaluated):
    ws, out = evaluated
    assert "linear probe top-1" in out and "eval.json" in out and "(+6 PNGs)" and "fine-tuned on 10% of the labels" in out and "effective rank" in out
    report = json.loads((ws / "reports" / "eval.json").read_text())
    keys = {"knn_top1", "knn_top1_random_init", "test_images", "classes", "holdout_fraction", "train_images",
            "protocol", "linear_probe_top1", "linear_probe_top1_random_init", "kmeans_nmi", "kmeans_ari",
            "kmeans_nmi_random_init", "kmeans_ari_random_init", "layer_probe_top1", "invariance",
            "invariance_relative", "pretext", "speed", "plots", "embeddings_match_encoder", "health",
            "health_random_init", "finetune", "finetune_protocol"}
    assert keys <= set(report), keys - set(report)
    assert report["classes"] == 10 and report["test_images"] > 100 and report["skipped"] == {}
    for key in ("knn_top1", "linear_probe_top1", "linear_probe_top1_random_init", "kmeans_nmi"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["linear_probe_top1"] > 0.15  # 10 classes: chance is 0.1
    assert list(report["layer_probe_top1"]) == ["layer1", "layer2", "layer3", "layer4"]
    assert report["invariance"]["random_pairs"] < 1 and "crop_flip" in report["invariance"]
    assert "loss" in report["pretext"]["simclr"]  # the fixture trains simclr only: a loss, no accuracy
    assert report["embeddings_match_encoder"] > 0.99
    assert report["speed"]["embed_images_per_s"] > 0 and report["speed"]["peak_rss_mb"] > 0
    assert set(report["plots"]) == {"training_curves", "training_health", "layer_probes", "embedding_map", "summary",
                                    "projections"}
    assert list(report["finetune"]) == ["1%", "10%"] and {r["steps"] for r in report["finetune"].values()} == {20}
    for row in report["finetune"].values():
        for key in ("finetune_top1", "finetune_top1_random_init", "linear_probe_top1"):
            assert 0.0 <= row[key] <= 1.0, key
    assert 10 <= report["finetune"]["1%"]["labelled_images"] < report["finetune"]["10%"]["labelled_images"]
    assert report["health"]["effective_rank"] > 1 and report["health"]["alignment"] >= 0
    for name in report["plots"].values():
        assert_png(ws / "reports" / name)


@pytest.mark.slow
def test_overview_page_shows_the_evaluation(evaluated, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CURATE_WORKSPACE", str(evaluated[0]))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error
    shown = {m.label: m.value for m in at.metric}
    report = json.loads((evaluated[0] / "reports" / "eval.json").read_text())
    assert shown["kNN top-1"] == f"{report['knn_top1']:.1%}" and "Linear probe top-1" in shown
    assert len(at.image) == 6 and len(at.dataframe) >= 1
    assert any("fine-tuned on 1% of the labels" in row for row in at.dataframe[0].value["metric"])


@pytest.mark.slow
def test_quick_eval_skips_the_slow_parts(evaluated, tmp_path):
    from curate.cli import main

    ws = tmp_path / "ws"
    shutil.copytree(evaluated[0], ws, ignore=shutil.ignore_patterns("checkpoint.pt"))
    assert main(["eval", "-w", str(ws), "--quick", "--no-baseline"]) == 0
    quick = json.loads((ws / "reports" / "eval.json").read_text())
    assert {"layers", "invariance", "pretext"} <= set(quick["skipped"]) and "layer_probe_top1" not in quick
    assert "knn_top1_random_init" not in quick and "linear_probe_top1" in quick
    assert not (ws / "reports" / "layer_probes.png").exists()  # no stale figure from the full run
