"""Exact duplicates (same bytes), near-duplicate groups from pairs, and the duplicates.parquet table.

`near_duplicates` (embedding cosine alone) is the stable API of DESIGN.md; the workspace's
`curate dedup` uses both pixel fingerprints and embeddings (curate.quality.pairs).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd


NEAR_K = 32  # neighbours per row checked for near duplicates: larger groups are cut (see near_duplicates)


def exact_duplicates(hashes: list[str | None]) -> list[list[int]]:
    """Groups (of row indices, size >= 2) of identical content hashes."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h:
            by_hash[h].append(i)
    return [g for g in by_hash.values() if len(g) > 1]


def near_duplicates(vectors: np.ndarray, threshold: float = 0.95, k: int = NEAR_K) -> list[list[int]]:
    """Groups of rows whose cosine similarity to the group's leader is >= threshold (vectors L2-normalised).

    Candidates are each row's `k` nearest neighbours (`curate.quality.scores.knn`: exact up to its
    EXACT_MAX rows, k-means-partitioned blocks above), never an N x N matrix: minutes at 1M rows.
    Groups are formed around leaders (the rows with most such neighbours first), not as connected
    components: chains of slightly-similar images would otherwise merge into one giant "duplicate"
    group. A group holds at most k + 1 rows (a larger one is cut around its k-th member, and the
    rest of it is grouped around its own leader). Sorted by size, largest first.
    """
    from curate.quality.scores import knn

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < 2:
        return []
    sims, ids = knn(x, min(k, len(x) - 1))
    rows = np.repeat(np.arange(len(x)), ids.shape[1])
    close = (sims.ravel() >= threshold) & (ids.ravel() >= 0)
    return groups_from_pairs(np.stack([rows[close], ids.ravel()[close]], axis=1), len(x))


def groups_from_pairs(pairs: np.ndarray, n: int) -> list[list[int]]:
    """Groups (rows, size >= 2) from duplicate pairs (P, 2) of rows in range(n), formed around leaders.

    As in `near_duplicates`: the row with most duplicate partners leads and takes its ungrouped
    partners, then the next; chains of pairwise look-alikes do not merge into one giant group.
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if not len(pairs):
        return []
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = both[np.lexsort((both[:, 1], both[:, 0]))]
    starts = np.searchsorted(both[:, 0], np.arange(n + 1))
    degree = np.diff(starts)
    group_of = np.full(n, -1)
    groups: list[list[int]] = []
    for leader in np.lexsort((np.arange(n), -degree)):
        if group_of[leader] >= 0 or degree[leader] == 0:
            continue
        members = [int(leader)] + [int(j) for j in both[starts[leader]:starts[leader + 1], 1] if group_of[j] < 0]
        if len(members) > 1:
            group_of[members] = len(groups)
            groups.append(sorted(set(members)))
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def calibrated_threshold(vectors: np.ndarray, low: float = 0.9, high: float = 0.995) -> float:
    """A near-duplicate cosine threshold from the data: far above the typical nearest-neighbour similarity.

    Near duplicates are the high outliers of the nearest-neighbour similarity distribution, so the
    threshold is its median + 5 robust standard deviations (MAD), kept within [low, high].
    """
    from curate.quality.scores import knn

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < 3:
        return high
    nearest = knn(x, 1)[0][:, 0]
    median = float(np.median(nearest))
    mad = 1.4826 * float(np.median(np.abs(nearest - median)))
    return float(np.clip(median + 5 * mad, low, high))


def groups_table(exact: list[list[int]], near: list[list[int]], ids: np.ndarray, pixels: np.ndarray,
                 sharpness: np.ndarray | None = None) -> pd.DataFrame:
    """The duplicates.parquet table: id, group, kind, keeper (the suggested image to keep).

    The keeper is the largest image of each group (pixel count); among equally large ones the
    sharpest (`sharpness`, higher is sharper, NaN for unmeasured rows), then the lowest row. An
    image in an exact group is not listed again in a near group; near groups are numbered after
    exact ones. `ids`, `pixels` and `sharpness` are per row (what the group indices refer to).
    """
    sharp = np.full(len(ids), -np.inf) if sharpness is None else np.nan_to_num(
        np.asarray(sharpness, np.float64), nan=-np.inf)
    columns: dict[str, list] = {"id": [], "group": [], "kind": [], "keeper": []}
    in_exact: set[int] = set()
    group = 0  # a running count: groups are numbered in the order they are written
    for kind, groups in (("exact", exact), ("near", near)):
        for members in groups:
            members = [m for m in members if kind == "exact" or m not in in_exact]
            if len(members) < 2:
                continue
            keeper = max(members, key=lambda m: (pixels[m], sharp[m], -m))
            columns["id"] += [int(ids[m]) for m in members]
            columns["group"] += [group] * len(members)
            columns["kind"] += [kind] * len(members)
            columns["keeper"] += [m == keeper for m in members]
            if kind == "exact":
                in_exact.update(members)
            group += 1
    return pd.DataFrame(columns).astype({"id": "int64", "group": "int64", "kind": "string", "keeper": "bool"})
