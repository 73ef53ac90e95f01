"""`curate eval`: the SSL literature's representation report (DESIGN.md §5) on a held-out split.

On the stored embeddings: weighted kNN, a linear probe and k-means NMI/ARI. With the encoder:
embedding throughput, the same three figures for the same architecture with random weights (the
floor training must beat), per-layer linear probes (ResNets), invariance to held-out augmentations
and held-out pretext-task accuracy; then PNG plots. Writes reports/eval.json and reports/*.png.
Each stage is named in the `progress` callback and timed in report["speed"]["stage_seconds"].
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass

import numpy as np
import torch

from curate import storage
from curate.data.cache import image_cache
from curate.data.manifest import labels as manifest_labels, ok_mask
from curate.data.split import holdout_mask
from curate.embed.encoder import backbone_spec, embed_images, load_encoder
from curate.evaluate import plots, protocol
from curate.evaluate.pretext import pretext_scores
from curate.evaluate.speed import current_rss_mb, embed_throughput, peak_rss_mb
from curate.models import build_backbone
from curate.pretext import TaskSpec
from curate.progress import Progress, report as report_progress
from curate.workspace import Workspace, now

DEFAULT_HOLDOUT = 0.1
PROTOCOL = ("weighted kNN, cosine, k=200, T=0.1; linear probe: L2-normalised + standardised features, L-BFGS "
            "logistic regression, weight decay chosen on held-back training images; k-means: spherical, "
            "k-means++ start, k = number of classes, mean over seeds")


@dataclass
class EvalOptions:
    """What `evaluate` measures and on how many images (subsamples bound the slow parts)."""

    random_baseline: bool = True
    layers: bool = True
    invariance: bool = True
    pretext: bool = True
    plots: bool = True
    layer_train_images: int = 10_000
    layer_test_images: int = 2_000
    invariance_images: int = 512
    pretext_images: int = 2_000
    speed_images: int = 512
    kmeans_seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 256
    seed: int = 0


def evaluate(ws: Workspace, random_baseline: bool = True, progress: Progress | None = None, quick: bool = False,
             options: EvalOptions | None = None) -> dict:
    """Write reports/eval.json (+ PNGs) and return it; needs labels (class sub-folders) and embeddings.

    `quick` skips the per-layer probes and the invariance test; `options`, when given, decides everything.
    """
    opts = options or EvalOptions(random_baseline=random_baseline, layers=not quick, invariance=not quick)
    started, rss_start, timer = time.perf_counter(), current_rss_mb(), StageTimer(progress)
    manifest = ws.manifest()
    split, holdout, names = _split(ws, manifest)
    report = {"protocol": PROTOCOL, "holdout_fraction": holdout["fraction"], "train_images": int(split.train.sum()),
              "test_images": int(split.test.sum()), "classes": split.n_classes, "created": now(),
              "held_out_during_training": holdout["during_training"], "skipped": {}}
    with timer("kNN, linear probe, k-means"):
        report.update(protocol.representation_scores(np.asarray(ws.embeddings()), split, opts.seed, opts.kmeans_seeds))
    speed = _model_stages(ws, manifest, split, opts, timer, report)
    report["speed"] = {**speed, "peak_rss_mb": round(peak_rss_mb(), 1), "rss_at_start_mb": round(rss_start, 1),
                       "threads": torch.get_num_threads(), "stage_seconds": timer.seconds}
    if opts.plots:
        with timer("plots"):
            report["plots"] = _write_plots(ws, report, names, split.n_classes)
    report["speed"]["eval_seconds"] = round(time.perf_counter() - started, 2)
    storage.write_json(ws.reports_dir / "eval.json", report)
    return report


def _split(ws: Workspace, manifest) -> tuple[protocol.LabelledSplit, dict, np.ndarray]:
    """The held-out split training used (model/config.json), class indices, and the label names (N,)."""
    names = manifest_labels(manifest)
    if names is None:
        raise ValueError("no labels in this workspace (images are not in class sub-folders): the evaluation "
                         "needs labels; the pretext losses are in model/train_log.jsonl")
    holdout = (ws.model_config() or {}).get("holdout", {}) or {}
    fraction = holdout.get("fraction") or DEFAULT_HOLDOUT
    usable = ok_mask(manifest) & np.array([n is not None for n in names])
    test = usable & holdout_mask(manifest["id"].to_numpy(), fraction, holdout.get("seed", 0))
    classes = {c: i for i, c in enumerate(sorted({n for n in names[usable]}))}
    y = np.array([classes[n] if ok else -1 for n, ok in zip(names, usable)], dtype=np.int64)
    info = {"fraction": fraction, "during_training": bool(holdout.get("fraction"))}
    return protocol.LabelledSplit(y, usable & ~test, test), info, names


def _model_stages(ws: Workspace, manifest, split, opts: EvalOptions, timer: "StageTimer", report: dict) -> dict:
    """Every stage that needs the encoder: fills `report`, returns the throughput figures."""
    if not ws.encoder_file.exists():
        report["skipped"]["model"] = f"no encoder at {ws.encoder_file}: figures of the stored embeddings only"
        return {}
    with timer("load encoder"):
        model, config = load_encoder(ws.encoder_file)
        images = image_cache(ws.root, manifest, config["image_size"], ws.cache_dir, progress=timer.progress)
    mean, std = config["normalization"]["mean"], config["normalization"]["std"]
    test_rows = np.flatnonzero(split.test)
    rows = protocol.subsample(test_rows, opts.speed_images, opts.seed)
    with timer("throughput"):
        vecs, per_s = embed_throughput(model, images, rows, mean, std, opts.batch_size)
    stored = np.asarray(ws.embeddings()[rows])
    if stored.shape == vecs.shape:  # < 1 when embeddings.npy is stale or from another model: re-run `curate embed`
        report["embeddings_match_encoder"] = float((vecs * stored).sum(1).mean())
    device = next(model.parameters()).device
    speed = {"embed_images_per_s": round(per_s, 1), "embed_images_timed": int(len(rows)), "device": str(device),
             "batch_size": opts.batch_size}
    if opts.random_baseline:
        with timer("random weights"):
            report.update(_random_init_scores(config, images, split, opts, timer, len(manifest), device))
    for part in ("layers", "invariance"):
        if not getattr(opts, part):
            report["skipped"][part] = "skipped (--quick)"
    if opts.layers:
        with timer("per-layer probes"):
            layers = protocol.layer_scores(model, images, split, mean, std, opts.layer_train_images,
                                           opts.layer_test_images, opts.seed, opts.batch_size, timer.progress)
        if "note" in layers:
            report["skipped"]["layers"] = layers.pop("note")
        report.update(layers)
    if opts.invariance:
        with timer("invariance"):
            report.update(protocol.invariance_scores(model, images, protocol.subsample(test_rows, opts.invariance_images,
                                                     opts.seed), mean, std, opts.seed, opts.batch_size, timer.progress))
    if opts.pretext:
        with timer("pretext"):
            rows = protocol.subsample(test_rows, opts.pretext_images, opts.seed)
            figures, why_not = _pretext(ws, model, config, images, rows, opts, timer)
        report.update(figures)
        if why_not:
            report["skipped"]["pretext"] = why_not
    return speed


def _random_init_scores(config: dict, images, split, opts: EvalOptions, timer: "StageTimer", n: int,
                        device: torch.device) -> dict:
    """The same figures for the same architecture with random weights: the floor training must beat."""
    torch.manual_seed(opts.seed)
    model = build_backbone(backbone_spec(config)).to(device).eval()
    norm = config["normalization"]
    rows = np.flatnonzero(split.train | split.test)
    vecs = embed_images(model, images, rows, norm["mean"], norm["std"], opts.batch_size,
                        progress=timer.renamed("embed (random weights)"))
    feats = np.zeros((n, vecs.shape[1]), np.float32)
    feats[rows] = vecs
    return protocol.representation_scores(feats, split, opts.seed, opts.kmeans_seeds, suffix="_random_init")


def _pretext(ws: Workspace, model, config: dict, images, rows, opts: EvalOptions,
             timer: "StageTimer") -> tuple[dict, str | None]:
    """(held-out figures of every pretext task in config.json, why there are none) from model/checkpoint.pt."""
    ckpt = ws.model_dir / "checkpoint.pt"
    if not ckpt.exists() or not config.get("tasks"):
        return {"pretext": {}}, f"no {ckpt.name} with the task heads beside the encoder"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    specs = [TaskSpec(t["name"], t.get("weight", 1.0), t.get("params") or {}) for t in config["tasks"]]
    scores, notes = pretext_scores(model, specs, state["tasks"], images, rows, opts.batch_size, opts.seed, timer.progress)
    return {"pretext": scores, "pretext_notes": notes, "pretext_images": int(len(rows))}, None


def _write_plots(ws: Workspace, report: dict, names: np.ndarray, n_classes: int) -> dict[str, str]:
    """The PNGs this report has data for, as {name: file name in reports/}; stale ones are removed."""
    out, log_file = ws.reports_dir, ws.model_dir / "train_log.jsonl"
    log = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()] if log_file.exists() else []
    headline = {"kNN": "knn_top1", "linear probe": "linear_probe_top1", "k-means NMI": "kmeans_nmi",
                "k-means ARI": "kmeans_ari"}
    trained = {k: report[v] for k, v in headline.items() if v in report}
    random_init = {k: report[f"{v}_random_init"] for k, v in headline.items() if f"{v}_random_init" in report}
    xy = np.load(ws.projection_file) if ws.projection_file.exists() else np.zeros((0, 2), np.float32)
    written = {
        "training_curves": plots.plot_training_curves(log, out / "training_curves.png"),
        "layer_probes": plots.plot_layer_probes(report.get("layer_probe_top1", {}), out / "layer_probes.png",
                                                chance=1 / max(1, n_classes)),
        "embedding_map": plots.plot_embedding_map(xy, names if len(xy) == len(names) else None, out / "embedding_map.png"),
        "summary": plots.plot_summary(trained, random_init, out / "summary.png"),
    }
    for name, path in written.items():
        if path is None:
            (out / f"{name}.png").unlink(missing_ok=True)  # a figure from an earlier run would mislead
    return {name: path.name for name, path in written.items() if path is not None}


class StageTimer:
    """Names each stage in the progress callback and records its wall-clock seconds."""

    def __init__(self, progress: Progress | None):
        self.seconds: dict[str, float] = {}
        self._outer, self._last = progress, None
        self.progress = None if progress is None else self._forward  # for the stages' own reports

    def _forward(self, done: int, total: int, info) -> None:
        self._last = info.get("stage")
        self._outer(done, total, info)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        report_progress(self.progress, 0, 1, stage=stage, unit="stage")
        start = time.perf_counter()
        yield
        self.seconds[stage] = round(time.perf_counter() - start, 2)
        if self._last == stage:  # a stage with bars of its own is done when they are: no second bar
            report_progress(self.progress, 1, 1, stage=stage, unit="stage")

    def renamed(self, stage: str) -> Progress | None:
        """The progress callback with every report relabelled `stage` (embed_images names its own)."""
        if self.progress is None:
            return None
        return lambda done, total, info: self.progress(done, total, {**info, "stage": stage})
