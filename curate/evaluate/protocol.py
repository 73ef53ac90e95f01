"""The evaluation protocol: which metric runs on which split or subsample, as report entries.

Composes the metric modules (knn, linear_probe, clustering, layers, invariance) over a labelled
train/test split of manifest rows. Arrays and models in, a flat dict of numbers out; no files.

Example:
    >>> split = LabelledSplit(y, train_mask, test_mask)
    >>> representation_scores(vectors, split)            # {"knn_top1": ..., "linear_probe_top1": ..., ...}
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.evaluate.clustering import kmeans_scores
from curate.evaluate.invariance import augmentation_invariance, held_out_augmentations, relative_invariance
from curate.evaluate.knn import weighted_knn
from curate.evaluate.layers import embed_stages, has_stages, layer_probes
from curate.evaluate.linear_probe import linear_probe
from curate.progress import Progress
from curate.train.device import autocast_factory
from curate.transforms import normalize


@dataclass
class LabelledSplit:
    """Rows are manifest ids. y (N,) class index, -1 where unlabelled; train, test (N,) disjoint bool masks."""

    y: np.ndarray
    train: np.ndarray
    test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1 if len(self.y) else 0


def subsample(rows: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """At most n of `rows`, drawn at random and returned sorted (sorted rows read a memmap faster)."""
    rows = np.asarray(rows)
    if len(rows) <= n:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))


def representation_scores(vectors: np.ndarray, split: LabelledSplit, seed: int = 0,
                          kmeans_seeds: tuple[int, ...] = (0, 1, 2), suffix: str = "") -> dict:
    """kNN and linear-probe top-1 (train -> test) and k-means NMI/ARI (all labelled rows) of vectors (N, D)."""
    y, train, test = split.y, split.train, split.test
    probe = linear_probe(vectors[train], y[train], vectors[test], y[test], seed=seed)
    labelled = train | test
    clusters = kmeans_scores(vectors[labelled], y[labelled], k=split.n_classes, seeds=kmeans_seeds)
    out = {"knn_top1": weighted_knn(vectors[train], y[train], vectors[test], y[test]),
           "linear_probe_top1": probe.top1, "kmeans_nmi": clusters.nmi, "kmeans_ari": clusters.ari}
    out = {f"{k}{suffix}": v for k, v in out.items()}
    if not suffix:  # the details are for the model under test, not for the baseline
        out["linear_probe"] = {"weight_decay": probe.weight_decay,
                               "val_top1": {f"{wd:g}": acc for wd, acc in probe.val_top1.items()}}
        out["kmeans"] = {"k": clusters.k, "seeds": list(kmeans_seeds), "images": int(labelled.sum()),
                         "nmi_std": clusters.nmi_std, "ari_std": clusters.ari_std}
    return out


def layer_scores(model: torch.nn.Module, images: np.ndarray, split: LabelledSplit, mean, std, n_train: int = 10_000,
                 n_test: int = 2_000, seed: int = 0, batch_size: int = 256, progress: Progress | None = None) -> dict:
    """Per-stage linear-probe top-1 on a train/test subsample ({"layer_probe_top1": {...}, ...}).

    Returns {"note": why not} for a backbone without ResNet stages.
    """
    if not has_stages(model):
        return {"note": f"per-layer probes need a ResNet: {type(model).__name__} has no layer1..layer4 stages"}
    train = subsample(np.flatnonzero(split.train), n_train, seed)
    test = subsample(np.flatnonzero(split.test), n_test, seed)
    rows = np.concatenate([train, test])
    feats = embed_stages(model.eval(), images, rows, mean, std, batch_size, progress=progress)
    tr, te = np.arange(len(train)), np.arange(len(train), len(rows))
    scores = layer_probes(feats, split.y[rows], tr, te, seed, progress)
    return {"layer_probe_top1": scores, "layer_probe": {"train_images": int(len(train)), "test_images": int(len(test)),
                                                        "pooling": "global average"}}


def invariance_scores(model: torch.nn.Module, images: np.ndarray, rows: np.ndarray, mean, std, seed: int = 0,
                      batch_size: int = 256, progress: Progress | None = None) -> dict:
    """Cosine similarity image vs augmented image per augmentation, and relative to random pairs."""
    device = next(model.parameters()).device
    model, autocast = model.eval(), autocast_factory(device, "auto")  # the precision `curate embed` uses

    def encode(x: torch.Tensor) -> torch.Tensor:
        with autocast():
            return model(normalize(x.to(device), mean, std)).float()

    sims = augmentation_invariance(encode, images[np.asarray(rows)], held_out_augmentations(images.shape[1]),
                                   batch_size, seed, progress)
    return {"invariance": sims, "invariance_relative": relative_invariance(sims), "invariance_images": int(len(rows))}
