"""InfoNCE against a queue of negatives, the contrastive loss of MoCo (He et al., 2020; Chen et al., 2020 "MoCo v2")."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Classify each query's positive key against a bank of negative keys (MoCo, eq. 1).

    query: (B, D), key: (B, D) where (query[i], key[i]) are two views of one image; negatives:
    (K, D), e.g. MoCo's queue of keys from earlier batches. Any scale (all are L2-normalised here).
    Per query the logits are [q.k+, q.n_1, ..., q.n_K] / temperature and the target is index 0.
    Returns the mean cross-entropy (scalar).

    >>> e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> infonce(e1, e1, e2, temperature=1.0)  # -log(e^1 / (e^1 + e^0))
    tensor(0.3133)
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    n = F.normalize(negatives.float(), dim=1)
    positive = (q * k).sum(1, keepdim=True)  # (B, 1)
    logits = torch.cat([positive, q @ n.T], dim=1) / temperature  # (B, 1 + K)
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets)
