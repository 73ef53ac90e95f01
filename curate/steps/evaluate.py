"""`curate eval`: kNN on a held-out split, against the same backbone with random weights."""
from __future__ import annotations

import numpy as np
import torch

from curate import storage
from curate.data.cache import image_cache
from curate.data.manifest import labels as manifest_labels, ok_mask
from curate.data.split import holdout_mask
from curate.embed.encoder import backbone_spec, embed_images
from curate.evaluate import weighted_knn
from curate.models import build_backbone
from curate.progress import Progress
from curate.workspace import Workspace, now

DEFAULT_HOLDOUT = 0.1


def evaluate(ws: Workspace, random_baseline: bool = True, progress: Progress | None = None) -> dict:
    """Write reports/eval.json; needs labels (class sub-folders) and embeddings."""
    manifest = ws.manifest()
    labels = manifest_labels(manifest)
    if labels is None:
        raise ValueError("no labels in this workspace (images are not in class sub-folders): "
                         "kNN evaluation needs labels; the pretext losses are in model/train_log.jsonl")
    config = ws.model_config() or {}
    holdout = config.get("holdout", {}) or {}
    fraction = holdout.get("fraction") or DEFAULT_HOLDOUT
    usable = ok_mask(manifest) & np.array([l is not None for l in labels])
    test = usable & holdout_mask(manifest["id"].to_numpy(), fraction, holdout.get("seed", 0))
    train = usable & ~test
    classes = {c: i for i, c in enumerate(sorted({l for l in labels[usable]}))}
    y = np.array([classes.get(l, -1) if l is not None else -1 for l in labels])
    vectors = np.asarray(ws.embeddings())
    report = {"protocol": "weighted kNN, cosine, k=200, T=0.1", "holdout_fraction": fraction,
              "train_images": int(train.sum()), "test_images": int(test.sum()), "classes": len(classes),
              "held_out_during_training": bool(holdout.get("fraction")),
              "knn_top1": weighted_knn(vectors[train], y[train], vectors[test], y[test]), "created": now()}
    if random_baseline and config:
        report["knn_top1_random_init"] = _random_init_knn(ws, config, manifest, train, test, y, progress)
    storage.write_json(ws.reports_dir / "eval.json", report)
    return report


def _random_init_knn(ws, config, manifest, train, test, y, progress) -> float:
    """Same protocol on the same architecture with random weights: the floor training must beat."""
    torch.manual_seed(0)
    model = build_backbone(backbone_spec(config)).eval()
    images = image_cache(ws.root, manifest, config["image_size"], ws.cache_dir)
    rows = np.flatnonzero(train | test)
    norm = config["normalization"]
    vecs = embed_images(model, images, rows, norm["mean"], norm["std"], progress=progress)
    feats = np.zeros((len(manifest), vecs.shape[1]), np.float32)
    feats[rows] = vecs
    return weighted_knn(feats[train], y[train], feats[test], y[test])
