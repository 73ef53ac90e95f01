"""Label-free health of a representation: is it spread out, and does it ignore the augmentations?

Four figures on L2-normalised embeddings, none needing labels:
- effective rank (RankMe, Garrido et al. 2023): exp of the entropy of the normalised singular
  values; how many directions the embeddings really use (1 = collapsed onto a line, D at most).
- alignment (Wang & Isola 2020): mean squared distance between two augmented views of the same
  image; lower means more invariant (0 for a constant encoder, so never read it alone).
- uniformity (Wang & Isola 2020): log of the mean Gaussian potential exp(-2 |zi - zj|^2) over
  pairs; lower means more spread over the sphere (0 when every vector is the same).
- nearest-neighbour similarity: mean cosine of each vector to its nearest other vector; close
  to 1 everywhere means the images are indistinguishable.

A collapsed representation is useless for search, duplicates and selection however low its
loss; `is_collapsed` says when these figures show one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

# A collapsed encoder maps every image to (nearly) one direction: effective rank near 1 and
# uniformity near 0. Even an untrained ResNet-10 sits far from that (measured on 512 CIFAR images:
# effective rank 128, uniformity -0.28, nearest-neighbour cosine 0.97), so the limits below only
# fire on a real collapse.
COLLAPSE_RANK = 1.5
COLLAPSE_UNIFORMITY = -0.02  # mean squared distance between vectors under ~0.01 (cosine above ~0.995)


# Each figure once, for every table, plot and page that shows them: key, name, how to read it, number format.
FIGURES = (
    ("effective_rank", "effective rank", "higher: more directions used", ".1f"),
    ("uniformity", "uniformity", "lower: more spread", ".3f"),
    ("alignment", "alignment", "lower: more invariant", ".3f"),
    ("nn_similarity", "nearest-neighbour cosine", "", ".3f"),
)
LOWER_IS_BETTER = frozenset({"uniformity", "alignment"})


def titled(name: str, reading: str) -> str:
    """'effective rank (higher: more directions used)': a figure's name with how to read it."""
    return f"{name} ({reading})" if reading else name


@dataclass
class Health:
    effective_rank: float
    alignment: float | None
    uniformity: float
    nn_similarity: float

    def to_dict(self) -> dict:
        return {k: (None if v is None else round(float(v), 5)) for k, v in asdict(self).items()}


def _unit(z: torch.Tensor) -> torch.Tensor:
    return F.normalize(torch.as_tensor(z).float(), dim=1)


def effective_rank(z: torch.Tensor) -> float:
    """RankMe: exp(entropy of the singular values of the (N, D) normalised embeddings, as a distribution)."""
    s = torch.linalg.svdvals(_unit(z).double())
    p = s / s.sum().clamp_min(1e-12) + 1e-12
    return float(torch.exp(-(p * p.log()).sum()))


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Mean |z1_i - z2_i|^alpha over positive pairs (rows of two views of the same images)."""
    return float((_unit(z1) - _unit(z2)).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """log mean over pairs i < j of exp(-t |zi - zj|^2); in [-4t, 0], lower is more uniform."""
    u = _unit(z)
    sq = torch.pdist(u.double()).pow(2)
    return float(torch.logsumexp(-t * sq, 0) - torch.log(torch.tensor(float(len(sq)), dtype=torch.float64)))


def nn_similarity(z: torch.Tensor) -> float:
    """Mean cosine similarity of each vector to its nearest other vector."""
    u = _unit(z)
    sim = u @ u.T
    sim.fill_diagonal_(-2.0)
    return float(sim.max(1).values.mean())


def health(z: torch.Tensor, z_other_view: torch.Tensor | None = None) -> Health:
    """The four figures for (N, D) embeddings; alignment only when a second view of the same rows is given."""
    if len(z) < 2:
        raise ValueError("health needs at least 2 embeddings")
    return Health(effective_rank(z), None if z_other_view is None else alignment(z, z_other_view),
                  uniformity(z), nn_similarity(z))


def is_collapsed(h: Health | dict) -> bool:
    """True when the embeddings have (nearly) fallen onto one direction."""
    d = h.to_dict() if isinstance(h, Health) else h
    return d["effective_rank"] < COLLAPSE_RANK or d["uniformity"] > COLLAPSE_UNIFORMITY


@torch.no_grad()
def encoder_health(model: torch.nn.Module, images, rows, mean, std, seed: int = 0, batch_size: int = 256) -> Health:
    """Health of `model` on images[rows] ((N, S, S, 3) uint8 cache): rank, uniformity and nearest-neighbour
    cosine of the plain images' embeddings; alignment of two augmented views (SimCLR's, seeded) of each."""
    import numpy as np

    from curate.train.device import autocast_factory
    from curate.transforms import make_views, normalize, siamese_views, to_float

    device = next(model.parameters()).device
    autocast, views = autocast_factory(device, "auto"), siamese_views(images.shape[1])
    generator = torch.Generator(device=device).manual_seed(seed)
    model = model.eval()
    plain, first, second = [], [], []
    rows = np.asarray(rows)
    for start in range(0, len(rows), batch_size):
        x = to_float(torch.from_numpy(np.ascontiguousarray(images[rows[start:start + batch_size]])).to(device))
        with autocast():
            plain.append(model(normalize(x, mean, std)).float())
            first.append(model(normalize(make_views(x, views, generator), mean, std)).float())
            second.append(model(normalize(make_views(x, views, generator), mean, std)).float())
    z = torch.cat(plain)
    return Health(effective_rank(z), alignment(torch.cat(first), torch.cat(second)), uniformity(z), nn_similarity(z))
