"""Invariance to augmentations: cosine similarity between an image's embedding and its augmented copy's.

Each augmentation is applied alone (crop + flip, colour jitter, greyscale, blur), so the report
says which nuisance the encoder ignores. Similarities only mean something against a reference:
the mean similarity of two *different* images (`random_pairs`), which is high for a collapsed or
untrained encoder; `relative_invariance` rescales to (s - random) / (1 - random): 1 = invariant,
0 = an augmented copy is no closer than an unrelated image.

Example:
    >>> sims = augmentation_invariance(encode, images, held_out_augmentations(32))
    >>> sims["crop_flip"], sims["random_pairs"]
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from curate.progress import Progress, report
from curate.transforms import ViewConfig, to_float
from curate.transforms.views import colour_jitter, random_blur, random_resized_crop

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]  # (B, 3, H, W) in [0, 1] -> same
Encode = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) in [0, 1] -> (B, D)


def held_out_augmentations(size: int) -> dict[str, Augment]:
    """One strong instance of each augmentation family, each applied to every image."""
    jitter = ViewConfig(size=size, jitter=1.0, grayscale=0.0)
    grey = ViewConfig(size=size, jitter=0.0, grayscale=1.0)
    return {
        "crop_flip": lambda x, g: random_resized_crop(x, size, scale=(0.08, 1.0), flip=0.5, generator=g),
        "colour_jitter": lambda x, g: colour_jitter(x, jitter, g),
        "greyscale": lambda x, g: colour_jitter(x, grey, g),
        "blur": lambda x, g: random_blur(x, 1.0, (1.0, 2.0), g),
    }


@torch.no_grad()
def augmentation_invariance(encode: Encode, images: np.ndarray, augmentations: dict[str, Augment],
                            batch_size: int = 256, seed: int = 0, progress: Progress | None = None) -> dict[str, float]:
    """Mean cosine similarity per augmentation, plus `random_pairs` (the reference).

    images: (N, S, S, 3) uint8 (N >= 2); encode maps a float batch in [0, 1] to embeddings.
    """
    if len(images) < 2:
        raise ValueError("invariance needs at least 2 images (one pair for the reference)")
    gen = torch.Generator().manual_seed(seed)
    sums = dict.fromkeys(augmentations, 0.0)
    clean = []
    for start in range(0, len(images), batch_size):
        x = to_float(torch.from_numpy(np.asarray(images[start:start + batch_size])))
        ref = F.normalize(encode(x).float(), dim=1)
        clean.append(ref)
        for name, augment in augmentations.items():
            aug = F.normalize(encode(augment(x, gen)).float(), dim=1)
            sums[name] += float((ref * aug).sum(1).sum())
        report(progress, start + len(x), len(images), stage="invariance", unit="img")
    sims = {name: total / len(images) for name, total in sums.items()}
    sims["random_pairs"] = random_pair_similarity(torch.cat(clean), seed)
    return sims


def random_pair_similarity(vectors: torch.Tensor, seed: int = 0) -> float:
    """Mean cosine similarity of each row of (N, D) L2-normalised vectors with another random row."""
    n = len(vectors)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    other = torch.where(perm == torch.arange(n), (perm + 1) % n, perm)  # never a row with itself
    return float((vectors * vectors[other]).sum(1).mean())


def relative_invariance(sims: dict[str, float]) -> dict[str, float]:
    """(s - random) / (1 - random) per augmentation of an `augmentation_invariance` result."""
    base = sims["random_pairs"]
    return {name: (s - base) / max(1e-9, 1.0 - base) for name, s in sims.items() if name != "random_pairs"}
