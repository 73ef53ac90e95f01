"""`curate run`, declared once: its steps in order, what each reads and writes, and how each runs.

Every way to build a workspace goes through `run`: the `curate run` command, the single-step
commands (`curate scan`, `train`, `embed`... run one step each), `pipelines/run_all.py` (a YAML
preset turned into the same options) and the app's background job (which starts `curate run`).
A new step is one `Step` in `STEPS`.

The options are `curate run`'s parsed arguments (an `argparse.Namespace`); fields a caller leaves
out take `curate run`'s defaults (`option`). Each step is incremental on its own, which is what
makes a rerun cheap and a killed run resumable:

    scan          rereads only new or changed files (size, mtime), keeps ids
    quality       measures only images without metrics; thresholds a person set are kept
    train         resumes an interrupted training, skips one finished with this recipe (--retrain repeats it)
    embed         embeds only images whose content or model changed; the index follows the embeddings
    map, dedup, scores, label-issues, select    recomputed from the embeddings (minutes at 1M)
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from typing import Callable

from curate.progress import command_progress
from curate.workspace import Workspace

log = logging.getLogger("curate")


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of the pipeline: its name, the workspace files it reads and writes, and its runner
    (options, workspace or None before the scan) -> workspace."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[argparse.Namespace, Workspace | None], Workspace]


# curate run's defaults for the options a caller may leave out (the Python API, pipelines/run_all.py)
DEFAULTS = {"engine": "local", "address": None, "actors": None, "gpus_per_actor": 0.0, "retrain": False,
            "resume": False, "model": None, "batch_size": None, "index_memory": None, "recall": None,
            "map_method": "auto", "dedup_threshold": None, "select": [], "train_fields": None}


def option(args: argparse.Namespace, name: str):
    return getattr(args, name, DEFAULTS.get(name))


def train_config(args: argparse.Namespace, ws: Workspace):
    """The training recipe: a preset (a task's own, or the default recipe for the images' size), then
    `train_fields` (a preset file's train section), then the flags given, on top; 10% held out for
    `curate eval` when the images carry labels, unless told otherwise."""
    from curate.data.manifest import labels
    from curate.pretext import TaskSpec, parse_task
    from curate.steps.train import data_image_size
    from curate.train.presets import config_from_dict, default_recipe, load_preset

    fields = dict(option(args, "train_fields") or {})
    task_flags = getattr(args, "task", None)
    tasks = [parse_task(t) for t in task_flags] if task_flags else None
    if tasks is None and fields.get("tasks"):
        tasks = config_from_dict({"tasks": fields["tasks"]}).tasks
    preset = getattr(args, "preset", None)
    size = getattr(args, "image_size", None) or fields.get("image_size")
    if preset or tasks:  # no preset: the recipe of the (first) task asked for (vicreg diverges under simclr's)
        cfg = config_from_dict(load_preset(preset or tasks[0].name))
    else:  # neither: the default recipe for the size these images train at
        cfg = config_from_dict(default_recipe(size or data_image_size(ws.manifest())))
    if tasks:
        preset_params = {t.name: t.params for t in cfg.tasks}  # `--task NAME:W` keeps the preset's settings of NAME
        cfg.tasks = [TaskSpec(t.name, t.weight, {**preset_params.get(t.name, {}), **t.params}) for t in tasks]
    fields.pop("tasks", None)
    cfg = config_from_dict({**cfg.to_dict(), **fields}) if fields else cfg
    flags = ("backbone", "image_size", "minutes", "epochs", "batch_size", "lr", "optimizer", "precision", "device",
             "seed", "health_minutes", "stop_on_collapse", "checkpoint_minutes", "snapshot_minutes", "holdout")
    for key in flags:
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    if getattr(args, "holdout", None) is None and "holdout" not in fields:
        cfg.holdout = 0.1 if labels(ws.manifest()) is not None else 0.0
    return cfg


def engine_args(args: argparse.Namespace) -> dict:
    return {"engine": option(args, "engine"), "address": option(args, "address"), "actors": option(args, "actors"),
            "gpus_per_actor": option(args, "gpus_per_actor")}


def scan_step(args: argparse.Namespace, ws: Workspace | None = None) -> Workspace:
    from curate.steps.scan import scan

    with command_progress("scan", "file") as bar:
        ws, summary = scan(args.images, args.workspace, progress=bar, engine=option(args, "engine"),
                           address=option(args, "address"))
    print(f"scanned {ws.root}: {summary.line()}")
    if summary.skipped:
        bad = ws.manifest()
        bad = bad[~bad["status"].isin(["ok", "removed"])]
        for row in bad.head(20).itertuples():
            print(f"  skipped {row.path}: {row.status}")
        if len(bad) > 20:
            print(f"  ... and {len(bad) - 20} more (see manifest.parquet, column status)")
    return ws


def quality_step(args: argparse.Namespace, ws: Workspace, cfg=None) -> Workspace:
    """The quality checks; `cfg` None keeps the thresholds the workspace has (a person's, or the defaults)."""
    from curate.quality.checks import FLAG_COLUMNS
    from curate.steps.quality import quality

    with command_progress("quality") as bar:
        manifest = quality(ws, cfg, progress=bar)
    counts = ", ".join(f"{int(manifest[f].sum())} {f}" for f in FLAG_COLUMNS)
    print(f"quality checks: {counts} -> {ws.manifest_file} (thresholds in {ws.path / 'quality.json'})")
    return ws


def train_step(args: argparse.Namespace, ws: Workspace | None = None, cfg=None) -> Workspace:
    """Train (DDP under torchrun with --nproc) with `cfg` (default: `train_config` of the options)."""
    from curate.steps.scan import image_decoder
    from curate.steps.train import train
    from curate.train.cpu_share import SHARED_BELOW

    if getattr(args, "nproc", None) is not None or getattr(args, "distributed_worker", False):  # DDP under torchrun
        from curate.train.launch import distributed_train
        return distributed_train(args, ws, train_step)
    ws = ws or scan_step(args)
    cfg = cfg or train_config(args, ws)
    names = "+".join(f"{t.name}:{t.weight:g}" for t in cfg.tasks)
    decode_files = image_decoder(option(args, "engine"), option(args, "address"))
    with command_progress(f"train {names}", "s") as bar:
        result = train(ws, cfg, resume=option(args, "resume"), progress=bar, decode_files=decode_files)
    print(f"trained {names} for {result.elapsed_s / 60:.1f} min: {result.steps} steps, "
          f"{result.images_per_s:.0f} img/s, loss {result.last_losses.get('loss', float('nan')):.3f} -> "
          f"{ws.encoder_file}")
    if result.cpu_share < SHARED_BELOW:
        trained = (ws.model_config() or {}).get("trained", {})
        epochs = result.images_seen / max(trained.get("train_images") or 1, 1)
        print(f"note: this run got {result.cpu_share:.0%} of the CPU its threads could use (another process shared the "
              "machine): the budget bought that share of the steps; rerun on a quiet machine for the full encoder, "
              f"or give a budget sharing cannot shrink: --epochs N (this run trained {epochs:.2g} epochs)")
    if result.health:
        h = result.health
        print(f"embedding health: effective rank {h['effective_rank']:.1f}, alignment {h['alignment']:.3f}, "
              f"uniformity {h['uniformity']:.3f}, nearest-neighbour cosine {h['nn_similarity']:.3f}")
    return ws


def train_if_needed(args: argparse.Namespace, ws: Workspace) -> Workspace:
    """`curate run`'s training: resume an interrupted one, skip one finished with this recipe."""
    from curate.steps.train import training_state

    cfg = train_config(args, ws)
    state, why = training_state(ws, cfg)
    if state == "finished" and not option(args, "retrain"):  # a rerun after adding images embeds them with this encoder
        print(f"training skipped: {why}; pass --retrain to train again")
        return ws
    if state == "interrupted":
        print(f"resuming training: {why}")
    return train_step(argparse.Namespace(**{**vars(args), "resume": state == "interrupted"}), ws, cfg) or ws


def embed_step(args: argparse.Namespace, ws: Workspace | None = None) -> Workspace:
    """Embed (locally or on Ray), then (re)build the index."""
    from curate import storage
    from curate.index import parse_memory
    from curate.steps.embed import embed
    from curate.steps.index import build_workspace_index

    ws = ws or scan_step(args)
    t = time.perf_counter()
    with command_progress("embed") as bar:
        vectors = embed(ws, option(args, "model"), batch_size=option(args, "batch_size") or 256, progress=bar,
                        **engine_args(args))
    with command_progress("index", "vec") as bar:
        sidecar = build_workspace_index(ws, memory=parse_memory(option(args, "index_memory") or "4G"),
                                        recall=option(args, "recall") or 0.95, progress=bar)
    meta = storage.read_json(ws.sidecar(ws.embeddings_file))
    kept = f", {meta['reused']:,} kept from the last embedding" if meta.get("reused") else ""
    if meta.get("engine") == "ray" and meta.get("newly_embedded"):
        kept += f" (on Ray, {meta['actors']} encoder actor{'s' if meta['actors'] != 1 else ''})"
    print(f"embedded {meta.get('newly_embedded', sidecar['n']):,} images{kept} ({vectors.shape[1]}-d) in "
          f"{time.perf_counter() - t:.1f}s; "
          f"index {sidecar['factory']} (recall@10 {sidecar['recall_at_10']:.3f}"
          f"{', nprobe ' + str(sidecar['nprobe']) if sidecar.get('nprobe', 1) > 1 else ''}) -> {ws.index_file}")
    if not sidecar.get("reached", True):
        print(f"note: the index reaches recall@10 {sidecar['recall_at_10']:.3f}, below --recall {sidecar['recall_target']}"
              ": give it more --index-memory")
    return ws


def map_step(args: argparse.Namespace, ws: Workspace) -> Workspace:
    from curate.steps.index import build_projection

    log.info("computing the 2-D map (%s)...", option(args, "map_method"))
    build_projection(ws, option(args, "map_method"))
    print(f"map -> {ws.projection_file}")
    return ws


def dedup_step(args: argparse.Namespace, ws: Workspace) -> Workspace:
    from curate.steps.dedup import dedup

    with command_progress("dedup", "pair") as bar:
        table = dedup(ws, option(args, "dedup_threshold"), progress=bar)
    print(dedup_summary(ws, table))
    return ws


def dedup_summary(ws: Workspace, table) -> str:
    from curate import storage

    meta = storage.read_json(ws.sidecar(ws.duplicates_file))
    kinds = table.groupby("kind")["group"].nunique().to_dict() if len(table) else {}
    how = {"calibrated": f"calibrated for {meta['calibration']['target']:.0%} precision",
           "marks": f"moved by {meta['marks']} marked pairs", "given": "given"}[meta["threshold_source"]]
    mirrored = meta["calibration"].get("mirrored_copies", 0)
    note = f"; {mirrored} mirrored copies seen (--flips counts them)" if mirrored and not meta["search"]["flips"] else ""
    return (f"{kinds.get('exact', 0)} exact and {kinds.get('near', 0)} near-duplicate groups ({len(table)} images): "
            f"{meta['pairs_found']} pairs at score >= {meta['threshold']:.3f} ({how}; expected precision "
            f"{meta['expected_precision']:.2f}){note} -> {ws.duplicates_file}")


def scores_step(args: argparse.Namespace, ws: Workspace, k: int = 10) -> Workspace:
    from curate.steps.scores import compute_scores

    table = compute_scores(ws, k=k)
    print(f"scores of {len(table)} images (uniqueness, typicality, {int(table['outlier'].sum())} outliers) "
          f"-> {ws.scores_file}")
    return ws


def label_issues_step(args: argparse.Namespace, ws: Workspace, k: int = 20, source: str = "auto",
                      required: bool = False, probabilities: str = "knn+linear") -> Workspace:
    """Label issues; in `curate run` (required=False) skipped quietly when the images carry no labels."""
    from curate import storage
    from curate.steps.label_issues import has_labels, label_issues, top_confusions

    if not required and not has_labels(ws):
        return ws
    table = label_issues(ws, k=k, source=source, probabilities=probabilities)
    meta = storage.read_json(ws.sidecar(ws.label_issues_file))
    top = ", ".join(f"{given}->{suggested} {n}" for given, suggested, n in top_confusions(table))
    print(f"label issues: {int(table['label_issue'].sum())} flagged of {len(table)} labelled images "
          f"({'imported labels' if meta['source'] == 'imported' else 'class folders'}; "
          f"{meta['agreement']:.0%} agree with their neighbours){'; most often ' + top if top else ''} "
          f"-> {ws.label_issues_file}")
    return ws


def parse_selection(spec) -> dict:
    """A selection to save at the end of a run: a dict (a preset's `select` entry) or STRATEGY:N[:NAME]."""
    if isinstance(spec, dict):
        return dict(spec)
    strategy, _, rest = str(spec).partition(":")
    n, _, name = rest.partition(":")
    if not strategy or not n:
        raise ValueError(f"--select takes STRATEGY:N[:NAME] (e.g. kcenter:100:diverse_100), not {spec!r}")
    return {"strategy": strategy, "n": float(n) if "." in n else int(n), **({"name": name} if name else {})}


def select_step(args: argparse.Namespace, ws: Workspace) -> Workspace:
    from curate.steps.select import run_selection

    for spec in option(args, "select") or []:
        selection = dict(parse_selection(spec))
        table = run_selection(ws, **selection)
        name = table.attrs["name"]
        print(f"selection {name}: {len(table)} images -> {ws.selections_dir / (name + '.parquet')}")
    return ws


STEPS = (
    Step("scan", ("IMAGES",), ("workspace.json", "manifest.parquet"), scan_step),
    Step("quality", ("IMAGES", "manifest.parquet"), ("manifest.parquet", "fingerprints.npy", "quality.json"),
         quality_step),
    Step("train", ("manifest.parquet", "cache/"),
         ("model/encoder.pt", "model/config.json", "model/checkpoint.pt", "model/train_log.jsonl"), train_if_needed),
    Step("embed", ("manifest.parquet", "model/encoder.pt"), ("embeddings.npy", "index.faiss", "index.json"),
         embed_step),
    Step("map", ("embeddings.npy",), ("projection_umap.npy",), map_step),
    Step("dedup", ("fingerprints.npy", "embeddings.npy"),
         ("knn_graph.npz", "duplicates.parquet", "duplicates.json", "duplicate_pairs.parquet"), dedup_step),
    Step("scores", ("embeddings.npy", "knn_graph.npz"), ("scores.parquet",), scores_step),
    Step("label-issues", ("manifest.parquet", "embeddings.npy"), ("label_issues.parquet",), label_issues_step),
    Step("select", ("embeddings.npy", "manifest.parquet"), ("selections/",), select_step),
)


def run(args: argparse.Namespace, steps: tuple[Step, ...] = STEPS) -> Workspace:
    """Run `steps` in order on `args.images` into `args.workspace`; returns the workspace."""
    t = time.perf_counter()
    ws = None
    for i, step in enumerate(steps, 1):
        (log.info if len(steps) > 1 else log.debug)("step %d/%d: %s", i, len(steps), step.name)
        ws = step.run(args, ws)
    print(f"done in {(time.perf_counter() - t) / 60:.1f} min. Explore it: curate app -w {ws.path}")
    return ws
