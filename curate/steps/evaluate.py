"""`curate eval`: the SSL literature's representation report (DESIGN.md §5) on a held-out split.

On the stored embeddings: weighted kNN, a linear probe and k-means NMI/ARI. With the encoder:
embedding throughput, the same three figures for the same architecture with random weights (the
floor training must beat), per-layer linear probes (ResNets), invariance to held-out augmentations
and held-out pretext-task accuracy; then PNG plots. Writes reports/eval.json and reports/*.png.
Each stage is named in the `progress` callback and timed in report["speed"]["stage_seconds"].
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from curate import storage
from curate.clock import now
from curate.data.cache import image_cache
from curate.data.manifest import labels as manifest_labels, ok_mask
from curate.data.split import holdout_mask
from curate.embed.encoder import backbone_spec, embed_images, load_encoder
from curate.evaluate import plots, protocol
from curate.evaluate.finetune import FinetuneConfig, finetune_top1, labelled_subset, steps_for
from curate.evaluate.health import encoder_health
from curate.evaluate.linear_probe import linear_probe
from curate.evaluate.pretext import pretext_scores
from curate.evaluate.speed import StageTimer, current_rss_mb, embed_throughput, peak_rss_mb
from curate.models import build_backbone
from curate.project.maps import PROJECTIONS, UMAP_MIN_POINTS
from curate.pretext import TaskSpec
from curate.progress import Progress
from curate.workspace import Workspace

DEFAULT_HOLDOUT = 0.1
PROJECTION_IMAGES = 5_000  # images on the side-by-side maps of the report (t-SNE of 5,000: ~15 s on 2 cores)
_FLAGS = {"random_baseline": "--no-baseline", "layers": "--quick", "invariance": "--quick",  # what turns a stage off
          "finetune": "--quick or --finetune-steps 0"}
HEALTH_PROTOCOL = ("label-free: effective rank (RankMe), uniformity and nearest-neighbour cosine of the embeddings "
                   "of held-out images, alignment (Wang & Isola) of two augmented views of each")
PROTOCOL = ("weighted kNN, cosine, k=200, T=0.1; linear probe: L2-normalised + standardised features, L-BFGS "
            "logistic regression, weight decay chosen on held-back training images; k-means: spherical, "
            "k-means++ start, k = number of classes, mean over seeds")


@dataclass
class EvalOptions:
    """What `evaluate` measures and on how many images (subsamples bound the slow parts)."""

    random_baseline: bool = True
    health: bool = True
    layers: bool = True
    invariance: bool = True
    pretext: bool = True
    finetune: bool = True  # the whole encoder fine-tuned on 1% and 10% of the labelled training images
    plots: bool = True
    finetune_steps: int = FinetuneConfig.steps
    layer_train_images: int = 10_000
    layer_test_images: int = 2_000
    invariance_images: int = 512
    health_images: int = 1_000
    pretext_images: int = 2_000
    speed_images: int = 512
    kmeans_seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 256
    seed: int = 0


def evaluate(ws: Workspace, random_baseline: bool = True, progress: Progress | None = None, quick: bool = False,
             options: EvalOptions | None = None, finetune_steps: int | None = None) -> dict:
    """Write reports/eval.json (+ PNGs) and return it; needs labels (class sub-folders) and embeddings.

    `quick` skips the per-layer probes, the invariance test and fine-tuning; `finetune_steps` (0: no
    fine-tuning) sets each fine-tuning run's length; `options`, when given, decides everything.
    """
    steps = EvalOptions.finetune_steps if finetune_steps is None else finetune_steps
    opts = options or EvalOptions(random_baseline=random_baseline, layers=not quick, invariance=not quick,
                                  finetune=not quick and steps > 0, finetune_steps=max(steps, 1))
    started, rss_start, timer = time.perf_counter(), current_rss_mb(), StageTimer(progress)
    manifest = ws.manifest()
    if manifest_labels(manifest) is None:  # no labels: the label-free report (health, invariance, pretext, speed)
        split, holdout, names = unlabelled_split(ws, manifest)
        report = {"protocol": HEALTH_PROTOCOL, "label_free": True, "holdout_fraction": holdout["fraction"],
                  "train_images": int(split.train.sum()), "test_images": int(split.test.sum()), "classes": 0,
                  "created": now(), "held_out_during_training": holdout["during_training"],
                  "skipped": {"labels": "no labels (images are not in class sub-folders): kNN, linear probe, "
                                        "k-means and per-layer probes need them; the label-free figures are below"}}
    else:
        split, holdout, names = labelled_split(ws, manifest)
        report = {"protocol": PROTOCOL, "holdout_fraction": holdout["fraction"], "train_images": int(split.train.sum()),
                  "test_images": int(split.test.sum()), "classes": split.n_classes, "created": now(),
                  "held_out_during_training": holdout["during_training"], "skipped": {}}
        with timer("kNN, linear probe, k-means"):
            report.update(protocol.representation_scores(np.asarray(ws.embeddings()), split, opts.seed,
                                                         opts.kmeans_seeds))
    speed = _model_stages(ws, manifest, split, opts, timer, report)
    report["speed"] = {**speed, "peak_rss_mb": round(peak_rss_mb(), 1), "rss_at_start_mb": round(rss_start, 1),
                       "threads": torch.get_num_threads(), "stage_seconds": timer.seconds}
    if opts.plots:
        with timer("plots"):
            report["plots"] = _write_plots(ws, report, names, opts.seed)
    report["speed"]["eval_seconds"] = round(time.perf_counter() - started, 2)
    storage.write_json(ws.eval_report_file, report)
    return report


def unlabelled_split(ws: Workspace, manifest) -> tuple[protocol.LabelledSplit, dict, None]:
    """Without labels: the images training held out (all usable images when it held none out), y = -1."""
    holdout = (ws.model_config() or {}).get("holdout", {}) or {}
    usable = ok_mask(manifest)
    held = usable & holdout_mask(manifest["id"].to_numpy(), holdout.get("fraction") or 0.0, holdout.get("seed", 0))
    test = held if held.any() else usable
    if not test.any():
        raise ValueError("no usable images in this workspace to evaluate on")
    info = {"fraction": holdout.get("fraction") or 0.0, "during_training": bool(held.any())}
    return protocol.LabelledSplit(np.full(len(manifest), -1, np.int64), usable & ~test, test), info, None


def labelled_split(ws: Workspace, manifest) -> tuple[protocol.LabelledSplit, dict, np.ndarray]:
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
    if not test.any() or test.sum() == usable.sum():
        raise ValueError(f"{int(test.sum())} of {int(usable.sum())} labelled images fall in the held-out split: "
                         "the evaluation needs images on both sides (add images, or train with another --holdout)")
    info = {"fraction": fraction, "during_training": bool(holdout.get("fraction"))}
    return protocol.LabelledSplit(y, usable & ~test, test), info, names


@dataclass
class _Encoder:
    """The trained encoder and what the stages that use it share."""

    model: torch.nn.Module
    config: dict  # its config.json
    images: np.ndarray  # (N, S, S, 3) uint8 decode cache at the training resolution, row = manifest id
    mean: list
    std: list


def _model_stages(ws: Workspace, manifest, split, opts: EvalOptions, timer: StageTimer, report: dict) -> dict:
    """Every stage that needs the encoder: fills `report` (skipped ones say why), returns the speed figures."""
    if not ws.encoder_file.exists():
        report["skipped"]["model"] = f"no encoder at {ws.encoder_file}: figures of the stored embeddings only"
        return {}
    with timer("load encoder"):
        model, config = load_encoder(ws.encoder_file)
        images = image_cache(ws.root, manifest, config["image_size"], ws.cache_dir, progress=timer.progress)
        enc = _Encoder(model, config, images, config["normalization"]["mean"], config["normalization"]["std"])
    with timer("throughput"):
        speed = _throughput(ws, enc, split, opts, report)
    stages = {"health": _health_scores, "random_baseline": _random_init_scores, "layers": _layer_scores, "invariance": _invariance_scores,
              "pretext": _pretext_scores, "finetune": _finetune_scores}
    for name, run in stages.items():
        if not getattr(opts, name):
            report["skipped"][name] = f"not asked for ({_FLAGS.get(name, 'EvalOptions')})"
            continue
        with timer(name.replace("_", " "), reports_itself=True):
            figures, why_not = run(ws, enc, split, opts, timer)
        report.update(figures)
        if why_not:
            report["skipped"][name] = why_not
    return speed


def _throughput(ws: Workspace, enc: _Encoder, split, opts: EvalOptions, report: dict) -> dict:
    """Embedding speed on held-out images, and whether embeddings.npy still matches the encoder."""
    rows = protocol.subsample(np.flatnonzero(split.test), opts.speed_images, opts.seed)
    vecs, per_s = embed_throughput(enc.model, enc.images, rows, enc.mean, enc.std, opts.batch_size)
    stored = np.asarray(ws.embeddings()[rows])
    if stored.shape == vecs.shape:  # < 1 when embeddings.npy is stale or from another model: re-run `curate embed`
        report["embeddings_match_encoder"] = float((vecs * stored).sum(1).mean())
    return {"embed_images_per_s": round(per_s, 1), "embed_images_timed": int(len(rows)), "batch_size": opts.batch_size,
            "device": str(next(enc.model.parameters()).device)}


def _random_init_model(enc: _Encoder, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_backbone(backbone_spec(enc.config)).to(next(enc.model.parameters()).device).eval()


def _health_scores(ws, enc: _Encoder, split, opts: EvalOptions, timer: StageTimer) -> tuple[dict, None]:
    """Label-free health (curate.evaluate.health) of held-out images, and of random weights as the floor."""
    rows = protocol.subsample(np.flatnonzero(split.test), opts.health_images, opts.seed)
    figures = {"health": encoder_health(enc.model, enc.images, rows, enc.mean, enc.std, opts.seed,
                                        opts.batch_size).to_dict(), "health_images": int(len(rows))}
    if opts.random_baseline:
        figures["health_random_init"] = encoder_health(_random_init_model(enc, opts.seed), enc.images, rows, enc.mean,
                                                       enc.std, opts.seed, opts.batch_size).to_dict()
    return figures, None


def _random_init_scores(ws, enc: _Encoder, split, opts: EvalOptions, timer: StageTimer) -> tuple[dict, str | None]:
    """The same figures for the same architecture with random weights: the floor training must beat."""
    if split.n_classes == 0:
        return {}, "needs labels (the random-weights health figures are under health_random_init)"
    model = _random_init_model(enc, opts.seed)
    rows = np.flatnonzero(split.train | split.test)
    vecs = embed_images(model, enc.images, rows, enc.mean, enc.std, opts.batch_size,
                        progress=timer.renamed("embed (random weights)"))
    feats = np.zeros((len(split.y), vecs.shape[1]), np.float32)
    feats[rows] = vecs
    return protocol.representation_scores(feats, split, opts.seed, opts.kmeans_seeds, suffix="_random_init"), None


def _layer_scores(ws, enc: _Encoder, split, opts: EvalOptions, timer: StageTimer) -> tuple[dict, str | None]:
    if split.n_classes == 0:
        return {}, "needs labels"
    figures = protocol.layer_scores(enc.model, enc.images, split, enc.mean, enc.std, opts.layer_train_images,
                                    opts.layer_test_images, opts.seed, opts.batch_size, timer.progress)
    return figures, figures.pop("note", None)


def _invariance_scores(ws, enc: _Encoder, split, opts: EvalOptions, timer: StageTimer) -> tuple[dict, None]:
    rows = protocol.subsample(np.flatnonzero(split.test), opts.invariance_images, opts.seed)
    return protocol.invariance_scores(enc.model, enc.images, rows, enc.mean, enc.std, opts.seed, opts.batch_size,
                                      timer.progress), None


def _finetune_scores(ws: Workspace, enc: _Encoder, split, opts: EvalOptions,
                     timer: StageTimer) -> tuple[dict, str | None]:
    """Transfer with a few labels: the encoder fine-tuned on 1% and 10% of the labelled training images,
    next to a linear probe on the same images' stored embeddings (and random weights fine-tuned alike)."""
    if split.n_classes == 0:
        return {}, "needs labels"
    cfg = FinetuneConfig(steps=opts.finetune_steps, seed=opts.seed)
    test = protocol.subsample(np.flatnonzero(split.test), cfg.test_images, opts.seed)
    vectors, rows = ws.embeddings(), {}
    for fraction in cfg.fractions:
        subset = labelled_subset(np.flatnonzero(split.train), split.y, fraction, opts.seed)
        name = f"{100 * fraction:g}%"
        started = time.perf_counter()
        tuned = finetune_top1(enc.model, enc.images, subset, split.y, test, enc.mean, enc.std, cfg, timer.progress,
                              stage=f"fine-tune on {name}")
        row = {"labelled_images": int(len(subset)), "steps": steps_for(len(subset), cfg), "finetune_top1": tuned,
               "finetune_seconds": round(time.perf_counter() - started, 1),
               "linear_probe_top1": linear_probe(np.asarray(vectors[subset]), split.y[subset],
                                                 np.asarray(vectors[test]), split.y[test], seed=opts.seed).top1}
        if opts.random_baseline:
            row["finetune_top1_random_init"] = finetune_top1(
                _random_init_model(enc, opts.seed), enc.images, subset, split.y, test, enc.mean, enc.std, cfg,
                timer.progress, stage=f"fine-tune random weights on {name}")
        rows[name] = row
    return {"finetune": rows, "finetune_protocol": {
        "steps": f"{cfg.epochs:g} passes over the labelled images, {cfg.min_steps}-{cfg.steps} steps",
        "batch_size": cfg.batch_size, "optimizer": "AdamW", "lr_head": cfg.lr,
        "lr_backbone": cfg.lr * cfg.backbone_lr_scale, "weight_decay": cfg.weight_decay,
        "augmentation": f"random resized crop (area >= {cfg.min_scale}), flip", "test_images": int(len(test))}}, None


def _pretext_scores(ws: Workspace, enc: _Encoder, split, opts: EvalOptions,
                    timer: StageTimer) -> tuple[dict, str | None]:
    """Held-out figures of every pretext task in config.json, its heads from model/checkpoint.pt."""
    ckpt = ws.checkpoint_file
    if not ckpt.exists() or not enc.config.get("tasks"):
        return {}, f"no {ckpt.name} with the task heads beside the encoder"
    heads = torch.load(ckpt, map_location="cpu", weights_only=True)["tasks"]
    specs = [TaskSpec(t["name"], t.get("weight", 1.0), t.get("params") or {}) for t in enc.config["tasks"]]
    rows = protocol.subsample(np.flatnonzero(split.test), opts.pretext_images, opts.seed)
    scores, notes = pretext_scores(enc.model, specs, heads, enc.images, rows, opts.batch_size, opts.seed,
                                   timer.progress)
    return {"pretext": scores, "pretext_notes": notes, "pretext_images": int(len(rows))}, None


def _write_plots(ws: Workspace, report: dict, names: np.ndarray | None, seed: int = 0) -> dict[str, str]:
    """The report's PNGs from the workspace's training logs and 2-D maps: {name: file name in reports/}."""
    xy = np.load(ws.projection_file) if ws.projection_file.exists() else np.zeros((0, 2), np.float32)
    labels = names if names is not None and len(xy) == len(names) else None
    return plots.write_report_plots(ws.reports_dir, report, storage.read_jsonl(ws.train_log_file), xy, labels,
                                    storage.read_jsonl(ws.health_log_file), _projections(ws, xy, names, seed))


def _projections(ws: Workspace, xy: np.ndarray, names: np.ndarray | None, seed: int = 0,
                 n: int = PROJECTION_IMAGES) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """UMAP (the workspace's map, when a UMAP made it), t-SNE and PCA of the same sample of embedded images,
    and their labels."""
    from curate.steps.index import indexed_rows
    from curate.steps.map import map_method

    vectors = ws.embeddings()
    embedded = indexed_rows(ws)
    if len(xy) == len(vectors):
        embedded = embedded[np.isfinite(xy[embedded]).all(1)]
    rows = protocol.subsample(embedded, n, seed)
    if len(rows) < UMAP_MIN_POINTS:
        return {}, None
    sample = np.asarray(vectors[rows], np.float32)
    maps = {"UMAP": xy[rows]} if len(xy) == len(vectors) and map_method(ws) == "umap" else {}
    maps.update({"t-SNE": PROJECTIONS.get("tsne")(sample, seed=seed), "PCA": PROJECTIONS.get("pca")(sample)})
    return maps, None if names is None else names[rows]
