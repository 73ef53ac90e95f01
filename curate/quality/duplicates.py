"""Exact duplicates (same bytes) and near duplicates (embedding cosine similarity above a threshold)."""
from __future__ import annotations

from collections import defaultdict

import faiss
import numpy as np
import pandas as pd


def exact_duplicates(hashes: list[str | None]) -> list[list[int]]:
    """Groups (of row indices, size >= 2) of identical content hashes."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h:
            by_hash[h].append(i)
    return [g for g in by_hash.values() if len(g) > 1]


def near_duplicates(vectors: np.ndarray, threshold: float = 0.95) -> list[list[int]]:
    """Connected groups of rows whose cosine similarity is >= threshold (vectors L2-normalised).

    FAISS range search finds every pair above the threshold without an N x N matrix; groups are
    the connected components of those pairs (union-find), sorted by size, largest first.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < 2:
        return []
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    lims, _, nbrs = index.range_search(x, float(threshold))
    parent = np.arange(len(x))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(x)):
        for j in nbrs[lims[i]:lims[i + 1]]:
            ri, rj = find(i), find(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(x)):
        groups[find(i)].append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


def groups_table(exact: list[list[int]], near: list[list[int]], ids: np.ndarray, pixels: np.ndarray) -> pd.DataFrame:
    """The duplicates.parquet table: id, group, kind, keeper (largest image of each group).

    An image in an exact group is not listed again in a near group; near groups are numbered after
    exact ones. `ids` and `pixels` are per row (what the group indices refer to).
    """
    rows, in_exact = [], set()
    for kind, groups in (("exact", exact), ("near", near)):
        for members in groups:
            members = [m for m in members if kind == "exact" or m not in in_exact]
            if len(members) < 2:
                continue
            group = len({r["group"] for r in rows})
            keeper = max(members, key=lambda m: (pixels[m], -m))
            for m in members:
                rows.append({"id": int(ids[m]), "group": group, "kind": kind, "keeper": m == keeper})
                if kind == "exact":
                    in_exact.add(m)
    return pd.DataFrame(rows, columns=["id", "group", "kind", "keeper"]).astype(
        {"id": "int64", "group": "int64", "kind": "string", "keeper": "bool"})
