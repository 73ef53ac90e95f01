"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Contrastive loss over 2B embeddings where (z1[i], z2[i]) are the positive pairs.

    z1, z2: (B, D), any scale (they are L2-normalised here). Each of the 2B anchors is classified
    against the other 2B-1 embeddings; the positive is its pair. Returns the mean loss (scalar).

    >>> nt_xent(torch.eye(2), torch.eye(2), temperature=1.0)  # doctest: +ELLIPSIS
    tensor(0.5514...)
    """
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # an anchor is never its own candidate
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, targets)


def multi_view_nt_xent(views: list[torch.Tensor], n_global: int = 2, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent over V >= 2 views of the same B images (multi-crop SimCLR).

    views: V tensors (B, D); the first `n_global` are the full-size views. Every view is an anchor
    classified against the other V*B - 1 embeddings; its positives are the *global* views of the
    same image (a small crop is pulled towards the whole picture, never towards another small
    crop, which may show an unrelated part, as in SwAV and DINO). With two views it is `nt_xent`.
    """
    v, b = len(views), views[0].shape[0]
    if not 1 <= n_global <= v or v < 2:
        raise ValueError(f"need at least 2 views and 1..{v} global ones, got {v} and {n_global}")
    z = F.normalize(torch.cat(views).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    view = torch.arange(v, device=z.device).repeat_interleave(b)
    image = torch.arange(b, device=z.device).repeat(v)
    positive = (image[:, None] == image[None, :]) & (view[None, :] < n_global)
    positive.fill_diagonal_(False)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1)).mean()
