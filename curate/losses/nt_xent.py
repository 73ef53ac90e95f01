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
