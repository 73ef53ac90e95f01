"""`curate select`: save a named selection (ids ranked by a strategy, under constraints) with the
strategy, parameters, seed and summary metrics next to it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from curate import storage
from curate.clock import now
from curate.data.manifest import labels as manifest_labels
from curate.data.tags import ids_with_tag, read_tags
from curate.select.auto import resolve_strategy
from curate.select.constraints import Constraints, constrained_select
from curate.select.filters import Filters, filter_mask
from curate.select.params import check_params
from curate.data.items import kinds, of_kind
from curate.data.manifest import ok_mask
from curate.steps.index import indexed_rows
from curate.steps.options import RunOptions
from curate.steps.scores import image_table
from curate.workspace import Workspace, safe_name

METRIC_SAMPLE = 100_000  # distance metrics are estimated on this many pool points beyond it
BALANCE_CLUSTERS = 10


@dataclass
class SelectionRequest:
    """Everything a selection depends on; saved with it, so it can be reproduced."""

    n: float  # a count, or a fraction of the eligible pool when < 1
    strategy: str = "auto"  # by budget: see curate/select/auto.py
    seed: int = 0
    params: dict = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    include: list[str] = field(default_factory=list)  # selection names or `tag:NAME` whose images must be in
    exclude: list[str] = field(default_factory=list)  # selection names or `tag:NAME` whose images must stay out
    include_ids: list[int] = field(default_factory=list)  # e.g. the app's basket
    balance: str | None = None  # "label" | "cluster"
    dedup: float | str | None = None  # cosine threshold, or "auto": one calibrated on the embeddings
    kind: str | None = None  # which items: image, object, frame (default: curate.data.items.default_kind)
    by_objects: bool = False  # rank images by the diversity of their objects (select_by_objects)


def save_selection(ws: Workspace, name: str, ids: np.ndarray, strategy: str, params: dict, seed: int,
                   scores: np.ndarray | None = None, metrics: dict | None = None,
                   request: dict | None = None) -> pd.DataFrame:
    name = safe_name(name)
    ids = np.asarray(ids, dtype=np.int64)
    table = pd.DataFrame({"id": ids, "rank": np.arange(len(ids), dtype=np.int64),
                          "score": np.asarray(scores if scores is not None else 1 - np.arange(len(ids)) / max(1, len(ids)),
                                              dtype=np.float64)})
    file = ws.selection_file(name)
    storage.write_parquet(file, table)
    table.attrs["name"] = name
    storage.write_json(ws.sidecar(file), {"strategy": strategy, "parameters": params, "seed": seed,
                                          "n": int(len(ids)), "metrics": metrics or {}, "created": now(),
                                          **({"request": request} if request else {})})
    return table


def delete_selection(ws: Workspace, name: str) -> None:
    file = ws.selection_file(name)
    for f in (file, ws.sidecar(file)):
        f.unlink(missing_ok=True)


SUMMARY_COLUMNS = ["name", "strategy", "n", "coverage radius", "created"]


def saved_selections(ws: Workspace) -> pd.DataFrame:
    """One row per saved selection, by name: name, strategy, n, coverage radius, created (empty
    figures for a selection saved without its JSON)."""
    rows = []
    for name in ws.selection_names():
        meta = ws.selection_meta(name) if ws.sidecar(ws.selection_file(name)).exists() else {}
        rows.append([name, meta.get("strategy"), meta.get("n"), (meta.get("metrics") or {}).get("coverage_radius"),
                     meta.get("created")])
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def rename_selection(ws: Workspace, old: str, new: str) -> None:
    src, dst = ws.selection_file(old), ws.selection_file(new)
    if dst.exists():
        raise FileExistsError(f"a selection named {new!r} exists already")
    ws.sidecar(src).rename(ws.sidecar(dst))
    src.rename(dst)  # the parquet last: it is what makes a selection exist


def selection_metrics(vectors: np.ndarray, order: np.ndarray, groups: dict[str, np.ndarray] | None = None,
                      seed: int = 0) -> dict:
    """Summary figures saved with every selection. vectors: the pool; order: chosen rows; groups:
    per-row keys (label, cluster) whose histograms are compared with the pool's."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    sample = np.arange(len(x)) if len(x) <= METRIC_SAMPLE else \
        np.random.default_rng(seed).choice(len(x), METRIC_SAMPLE, replace=False)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x[order])
    d2, _ = index.search(x[sample], 1)
    dist = np.sqrt(np.maximum(d2[:, 0], 0))
    metrics = {"pool": int(len(x)), "n": int(len(order)), "coverage_radius": float(dist.max()),
               "mean_distance_to_selected": float(dist.mean()),
               "distances_estimated_on": int(len(sample))}
    for name, keys in (groups or {}).items():
        keys = np.asarray(keys).astype(str)
        metrics[f"{name}_histogram"] = {"selected": _counts(keys[order]), "pool": _counts(keys)}
    return metrics


def kmeans_clusters(vectors: np.ndarray, k: int = BALANCE_CLUSTERS, seed: int = 0) -> np.ndarray:
    """(N,) k-means cluster of every row (FAISS, trained on at most 256 points per cluster)."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    k = max(1, min(k, len(x)))
    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=seed, max_points_per_centroid=256, verbose=False)
    km.train(x)
    return km.index.search(x, 1)[1][:, 0]


def cluster_rows(vectors: np.ndarray, rows: np.ndarray, k: int = BALANCE_CLUSTERS, seed: int = 0) -> np.ndarray:
    """(N,) int64 `kmeans_clusters` of the (N, D) `vectors` listed in `rows` (ids with an embedding),
    -1 for every other row."""
    out = np.full(len(vectors), -1, np.int64)
    out[rows] = kmeans_clusters(np.asarray(vectors[rows]), k, seed)
    return out


@dataclass
class SelectionResult:
    ids: np.ndarray  # image ids in priority order
    metrics: dict
    request: dict  # the request as saved (with the dedup threshold actually used)
    strategy: str  # the strategy that ranked it (`auto` resolved for the budget)


def select_by_objects(ws: Workspace, req: SelectionRequest) -> SelectionResult:
    """Images ranked by the diversity of their objects: the request's strategy (filters, balance: on the objects,
    e.g. balanced over object classes) ranks the objects, and each image takes the rank of its first object
    chosen. Objects are ranked until n images are covered (4 objects an image first, then all of them)."""
    manifest = ws.manifest()
    objects = int(((kinds(manifest) == "object") & ok_mask(manifest)).sum())
    images = int(((kinds(manifest) == "image") & ok_mask(manifest)).sum())
    if not objects:
        raise ValueError("--by-objects needs object items: scan with --annotations first")
    n = budget(req.n, images)
    parents = manifest["parent"].to_numpy(dtype=float, na_value=-1)
    for n_objects in dict.fromkeys((min(objects, 4 * n), objects)):
        ranked = compute_selection(ws, replace(req, kind="object", by_objects=False, n=n_objects))
        order = pd.unique(parents[ranked.ids].astype(np.int64))
        if len(order) >= n:
            break
    chosen = order[:n]
    vectors = np.asarray(ws.embeddings())
    pool = np.flatnonzero((kinds(manifest) == "image") & ok_mask(manifest))
    metrics = selection_metrics(vectors[pool], np.searchsorted(pool, chosen), seed=req.seed)
    return SelectionResult(chosen, {**metrics, "objects_ranked": int(len(ranked.ids))},
                           {**ranked.request, "kind": "image", "by_objects": True, "n": req.n}, ranked.strategy)


def compute_selection(ws: Workspace, req: SelectionRequest) -> SelectionResult:
    """Rank images of the workspace with the request's strategy under its constraints (nothing saved)."""
    if req.by_objects:
        return select_by_objects(ws, req)
    manifest = image_table(ws)  # the manifest plus scores and duplicate flags, for the filters
    ids = indexed_rows(ws)
    vectors = np.asarray(ws.embeddings())[ids]
    tags = read_tags(ws)
    eligible = (filter_mask(manifest, req.filters, tags) & of_kind(manifest, req.kind))[ids]
    position = np.full(len(manifest), -1)
    position[ids] = np.arange(len(ids))

    def rows_of(image_ids) -> np.ndarray:
        p = position[np.asarray(list(image_ids), np.int64)]
        return p[p >= 0]

    include = rows_of([*req.include_ids, *[i for ref in req.include for i in _ref_ids(ws, ref, tags)]])
    exclude = rows_of([i for ref in req.exclude for i in _ref_ids(ws, ref, tags)])
    groups = _group_keys(manifest, ids, vectors, seed=req.seed)
    if req.balance and req.balance not in groups:
        raise ValueError("cannot balance by label: the images have no labels" if req.balance == "label"
                         else f"balance must be 'label' or 'cluster', not {req.balance!r}")
    constraints = Constraints(include=include, exclude=exclude, pool=eligible,
                              balance=groups[req.balance] if req.balance else None,
                              dedup=_dedup_threshold(ws, req.dedup))
    pool_size = int(np.count_nonzero(constraints.eligible(len(ids)))) + len(include)
    n = budget(req.n, pool_size)
    strategy = resolve_strategy(req.strategy, n)
    check_params(strategy, req.params)  # a clear message, not a TypeError deep in the strategy
    order = constrained_select(vectors, n, strategy, req.seed, constraints,
                               neighbours=_shared_graph(ws, strategy, ids), **req.params)
    if len(order) == 0:
        raise ValueError("no image passes the filters and constraints: nothing to select")
    in_pool = eligible.copy()
    in_pool[include] = True
    metrics = selection_metrics(vectors[in_pool], (np.cumsum(in_pool) - 1)[order],
                                {name: np.asarray(keys)[in_pool] for name, keys in groups.items()}, seed=req.seed)
    return SelectionResult(ids[order], metrics, {**asdict(req), "dedup_threshold": constraints.dedup}, strategy)


def run_selection(ws: Workspace, n: float, strategy: str = "auto", name: str | None = None, seed: int = 0,
                  request: SelectionRequest | None = None, **params) -> pd.DataFrame:
    """Compute a selection (see compute_selection) and save it as `name` (default STRATEGY_N, the
    strategy that ranked it); the table's `attrs["name"]` says which. `n` < 1 is a fraction of
    the eligible images."""
    req = request or SelectionRequest(n=n, strategy=strategy, seed=seed, params=params)
    result = compute_selection(ws, req)
    return save_selection(ws, name or f"{result.strategy}_{len(result.ids)}", result.ids, result.strategy,
                          req.params, req.seed, metrics=result.metrics, request=result.request)


def _shared_graph(ws: Workspace, strategy: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The workspace's k-NN graph (sims, row positions) for strategies that take one, else None."""
    import inspect

    from curate.select.base import STRATEGIES
    from curate.steps.graph import knn_graph, positions

    if "neighbours" not in inspect.signature(STRATEGIES.get(strategy)).parameters:
        return None
    rows, sims, neighbours = knn_graph(ws)
    return (sims, positions(neighbours, ids)) if np.array_equal(rows, ids) else None


def budget(n: float, pool_size: int) -> int:
    """A count from `n`: an integer count, or a fraction of the pool when 0 < n < 1."""
    if n <= 0:
        raise ValueError(f"n must be positive (a count, or a fraction below 1), got {n}")
    return max(1, int(round(n * pool_size))) if n < 1 else int(n)


def _ref_ids(ws: Workspace, ref: str, tags: pd.DataFrame) -> np.ndarray:
    """Ids named by a selection name or `tag:NAME`."""
    if ref.startswith("tag:"):
        return ids_with_tag(ws, ref[4:], tags)
    return ws.selection(ref)["id"].to_numpy(np.int64)


def _group_keys(manifest: pd.DataFrame, ids: np.ndarray, vectors: np.ndarray, seed: int) -> dict:
    keys = {"cluster": kmeans_clusters(vectors, seed=seed)}
    labels = manifest_labels(manifest)
    if labels is not None:
        keys["label"] = np.asarray(labels, dtype=object)[ids].astype(str)
    return keys


def _dedup_threshold(ws: Workspace, dedup) -> float | None:
    if dedup is None or dedup is False:
        return None
    if dedup == "auto" or dedup is True:
        # An embedding-cosine threshold: the selection compares embeddings. (duplicates.json's
        # threshold is on the pixel+embedding pair score; skip its groups with --skip-flag duplicate.)
        from curate.quality import calibrated_threshold
        return calibrated_threshold(np.asarray(ws.embeddings())[indexed_rows(ws)])
    return float(dedup)


def _counts(keys: np.ndarray) -> dict:
    values, counts = np.unique(keys, return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


@dataclass(frozen=True)
class SelectSummary:
    saved: tuple[tuple[str, int], ...]  # (name, images) of each selection saved
    folder: Path

    def lines(self) -> list[str]:
        return [f"selection {name}: {n} images -> {self.folder / (name + '.parquet')}" for name, n in self.saved]


def parse_selection(spec) -> dict:
    """A selection to save at the end of a run: a dict (a preset's `select` entry) or STRATEGY:N[:NAME]."""
    if isinstance(spec, dict):
        return dict(spec)
    strategy, _, rest = str(spec).partition(":")
    n, _, name = rest.partition(":")
    if not strategy or not n:
        raise ValueError(f"--select takes STRATEGY:N[:NAME] (e.g. kcenter:100:diverse_100), not {spec!r}")
    return {"strategy": strategy, "n": float(n) if "." in n else int(n), **({"name": name} if name else {})}


def run(ws: Workspace, options: RunOptions, progress=None) -> SelectSummary:
    """The select step of `curate run`: save each selection of `options.select` (seeded by --seed)."""
    saved = []
    for spec in options.select:
        selection = {"seed": options.seed or 0, **parse_selection(spec)}
        table = run_selection(ws, **selection)
        saved.append((table.attrs["name"], len(table)))
    return SelectSummary(tuple(saved), ws.selections_dir)
