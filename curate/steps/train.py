"""`curate train`: SSL pretraining on the workspace's images; exports model/encoder.pt + config.json."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from curate import storage
from curate.clock import now
from curate.data.cache import DecodeFiles, image_cache
from curate.data.items import kinds
from curate.data.manifest import fingerprint, labels, ok_mask
from curate.data.split import holdout_mask
from curate.distributed import current as current_world
from curate.locks import locked
from curate.models import BackboneSpec
from curate.models.vit import VIT_SIZES, vit_stem
from curate.pretext import TaskSpec, parse_task
from curate.progress import Progress
from curate.steps.options import DEFAULT_MINUTES, RunOptions
from curate.train import TrainConfig, TrainResult, train as train_loop
from curate.train.config import auto_image_size, auto_stem
from curate.train.cpu_share import SHARED_BELOW
from curate.train.presets import config_from_dict, default_recipe, load_preset
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD
from curate.workspace import Workspace

log = logging.getLogger(__name__)


def data_image_size(manifest) -> int:
    """The training resolution the usable images call for (auto_image_size of their median short side)."""
    ok = manifest[ok_mask(manifest)]
    if ok.empty:
        raise ValueError("no usable images to train on: every image was skipped (see manifest.parquet, column status)")
    return auto_image_size(float(np.median(np.minimum(ok["width"], ok["height"]))))


def resolve_config(ws: Workspace, cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its automatic fields (image size, stem, budget) filled from the data (a new config)."""
    image_size = cfg.image_size or data_image_size(ws.manifest())
    if cfg.backbone in VIT_SIZES:  # a ViT's stem is its patch size, which here fixes the token grid
        stem = vit_stem(image_size, cfg.stem)
    else:
        stem = cfg.stem or auto_stem(image_size)
    no_budget = cfg.minutes is None and cfg.epochs is None
    return dataclasses.replace(cfg, image_size=image_size, stem=stem,
                               minutes=DEFAULT_MINUTES if no_budget else cfg.minutes)


def train_config(ws: Workspace, options: RunOptions) -> TrainConfig:
    """The training recipe: a preset (a task's own, or the default recipe for the images' size), then
    `options.train_fields` (a preset file's train section), then the flags given, on top; 10% held out
    for `curate eval` when the images carry labels, unless told otherwise."""
    fields = dict(options.train_fields or {})
    tasks = [parse_task(t) for t in options.task] if options.task else None
    if tasks is None and fields.get("tasks"):
        tasks = config_from_dict({"tasks": fields["tasks"]}).tasks
    size = options.image_size or fields.get("image_size")
    if options.preset or tasks:  # no preset: the recipe of the (first) task asked for (vicreg diverges under simclr's)
        cfg = config_from_dict(load_preset(options.preset or tasks[0].name))
    else:  # neither: the default recipe for the size these images train at
        cfg = config_from_dict(default_recipe(size or data_image_size(ws.manifest())))
    if tasks:
        preset_params = {t.name: t.params for t in cfg.tasks}  # `--task NAME:W` keeps the preset's settings of NAME
        cfg.tasks = [TaskSpec(t.name, t.weight, {**preset_params.get(t.name, {}), **t.params}) for t in tasks]
    fields.pop("tasks", None)
    cfg = config_from_dict({**cfg.to_dict(), **fields, **options.train_overrides()})
    if options.holdout is None and "holdout" not in fields:
        cfg.holdout = 0.1 if labels(ws.manifest()) is not None else 0.0
    return cfg


# TrainConfig fields that only watch a run (a resumed run takes them from its own command)
WATCHING = ("health_minutes", "health_images", "stop_on_collapse", "checkpoint_minutes", "snapshot_minutes")
# ... and those that also place or name it: a run that differs in these alone is the same recipe
NOT_RECIPE = WATCHING + ("log_every", "device", "recipe")


def same_recipe(a: dict, b: dict) -> bool:
    """True when two resolved TrainConfig dicts train the same encoder (watching settings aside)."""
    strip = lambda d: {k: v for k, v in TrainConfig.from_dict(d).to_dict().items() if k not in NOT_RECIPE}  # noqa: E731
    return strip(a) == strip(b)


def training_state(ws: Workspace, cfg: TrainConfig) -> tuple[str, str]:
    """(state, why) of this workspace's training for the recipe `cfg`:
    "finished" (its encoder was trained with this recipe: nothing to do), "interrupted" (a checkpoint of
    this recipe stopped before its budget: resume it) or "new" (train from scratch)."""
    cfg = resolve_config(ws, cfg)
    run_file, ckpt = ws.run_config_file, ws.checkpoint_file
    if not run_file.exists() or not same_recipe(storage.read_json(run_file), cfg.to_dict()):
        return "new", "no training with this recipe in the workspace"
    config = ws.model_config() or {}
    if ws.encoder_file.exists() and same_recipe(config.get("train_config") or {}, cfg.to_dict()):
        trained = config.get("trained", {})
        return "finished", (f"the encoder was trained with this recipe ({trained.get('elapsed_s', 0) / 60:.1f} min on "
                            f"{trained.get('train_images', '?')} images, {config.get('created', '?')})")
    state = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt.exists() else None
    if state is not None and same_recipe(state.get("config") or {}, cfg.to_dict()):
        return "interrupted", f"a run of this recipe stopped after {state['elapsed_s'] / 60:.1f} min (step {state['step']})"
    return "new", "the last run of this recipe left no checkpoint of its own"


# Set by `curate train --nproc` for its torchrun ranks: the launcher holds the workspace's model lock
LOCK_HELD_ENV = "CURATE_MODEL_LOCK_HELD"


def train_workspace(ws: Workspace, cfg: TrainConfig, resume: bool = False, progress: Progress | None = None,
          decode_files: DecodeFiles | None = None) -> TrainResult:
    """Train the workspace's encoder; one training at a time per workspace (a second gets WorkspaceBusy).
    `decode_files`: how the decoded-image cache decodes (an engine's `decode_files`, curate.engines; default: threads here).

    In a DDP run every rank calls this; rank 0 takes the lock (unless the `--nproc` launcher holds it)."""
    with _model_lock(ws):
        return _train(ws, cfg, resume, progress, decode_files)


def _model_lock(ws: Workspace):
    if not current_world().main or os.environ.get(LOCK_HELD_ENV):
        return contextlib.nullcontext()
    return locked(ws.locks_dir, "model", wait=False, what="a training run")


def run_config(ws: Workspace, cfg: TrainConfig, resume: bool) -> TrainConfig:
    """The configuration a run trains with: `cfg` resolved, or on --resume the interrupted run's own
    recipe with this run's budget and watching settings."""
    if resume and ws.checkpoint_file.exists() and ws.run_config_file.exists():
        budget = {"minutes": cfg.minutes, "epochs": None} if cfg.minutes else {"epochs": cfg.epochs} if cfg.epochs else {}
        watch = {k: getattr(cfg, k) for k in WATCHING}
        cfg = TrainConfig.from_dict({**storage.read_json(ws.run_config_file), **budget, **watch})
        log.info("resuming with the interrupted run's configuration")
    return resolve_config(ws, cfg)


TRAIN_ON = {"images": ("image", "frame"), "objects": ("object",), "both": ("image", "frame", "object")}


def training_kinds_mask(manifest, train_on: str) -> np.ndarray:
    """(N,) True for rows of the kinds `train_on` names (TRAIN_ON: frames count as images)."""
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {', '.join(TRAIN_ON)}, not {train_on!r}")
    return np.isin(kinds(manifest), TRAIN_ON[train_on])


def build_image_cache(ws: Workspace, cfg: TrainConfig, progress: Progress | None = None,
                      decode_files: DecodeFiles | None = None) -> np.ndarray:
    """The decoded images a training with `cfg` reads ((N, S, S, 3) uint8, row = id), built if missing."""
    return image_cache(ws.root, ws.manifest(), cfg.image_size, ws.cache_dir, progress=progress,
                       decode_files=decode_files)


def _train(ws: Workspace, cfg: TrainConfig, resume: bool, progress: Progress | None,
           decode_files: DecodeFiles | None = None) -> TrainResult:
    cfg = run_config(ws, cfg, resume)
    manifest = ws.manifest()
    images = build_image_cache(ws, cfg, progress, decode_files)
    usable = ok_mask(manifest) & training_kinds_mask(manifest, cfg.train_on)
    train_ids = np.flatnonzero(usable & ~holdout_mask(manifest["id"].to_numpy(), cfg.holdout, cfg.seed))
    if len(train_ids) < 2:
        raise ValueError(f"only {len(train_ids)} usable training items ({cfg.train_on}) in {ws.root}: at least 2 "
                         "are needed")
    world = current_world()
    if world.main:
        storage.write_json(ws.run_config_file, cfg.to_dict())
    result = train_loop(images, train_ids, cfg, ws.model_dir, resume=resume, progress=progress)
    if not world.main:  # rank 0 exports
        return result
    storage.save_torch(ws.encoder_file, {k: v.contiguous() for k, v in result.backbone.state_dict().items()})
    storage.write_json(ws.model_config_file, {
        "architecture": cfg.backbone, "stem": cfg.stem, "image_size": cfg.image_size,
        "backbone": BackboneSpec(cfg.backbone, cfg.stem, cfg.image_size).to_dict(),
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "tasks": [t.to_dict() for t in cfg.tasks], "recipe": cfg.recipe,
        "budget": {"minutes": cfg.minutes, "epochs": cfg.epochs},
        "trained": {"steps": result.steps, "images_seen": result.images_seen, "batch_size": result.batch_size, "elapsed_s": round(result.elapsed_s, 1),
                    "images_per_s": round(result.images_per_s, 1), "final_losses": result.last_losses,
                    "train_images": int(len(train_ids)), "train_on": cfg.train_on, "health": result.health,
                    "cpu_share": result.cpu_share, "threads": torch.get_num_threads(),
                    "world_size": result.world_size, "nproc": world.local_size},
        "holdout": {"fraction": cfg.holdout, "seed": cfg.seed}, "data_fingerprint": fingerprint(manifest),
        "train_config": cfg.to_dict(), "created": now(),
    })
    return result


@dataclasses.dataclass(frozen=True)
class TrainSummary:
    """What a training did (read back from model/config.json, so a DDP run reports the same), or why
    it was skipped."""
    tasks: str  # "simclr:1+rotation:0.5"
    encoder_file: Path
    skipped: str | None = None  # why no training ran (the encoder was trained with this recipe)
    resumed: str | None = None  # why an interrupted training was resumed
    minutes: float = 0.0
    steps: int = 0
    images_per_s: float = 0.0
    loss: float = math.nan
    cpu_share: float = 1.0  # below SHARED_BELOW: another process shared the machine
    epochs: float = 0.0
    health: dict | None = None

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"training skipped: {self.skipped}; pass --retrain to train again"]
        out = [f"resuming training: {self.resumed}"] if self.resumed else []
        out.append(f"trained {self.tasks} for {self.minutes:.1f} min: {self.steps} steps, {self.images_per_s:.0f} img/s, "
                   f"loss {self.loss:.3f} -> {self.encoder_file}")
        if self.cpu_share < SHARED_BELOW:
            out.append(f"note: this run got {self.cpu_share:.0%} of the CPU its threads could use (another process "
                       "shared the machine): the budget bought that share of the steps; rerun on a quiet machine for "
                       f"the full encoder, or give a budget sharing cannot shrink: --epochs N (this run trained "
                       f"{self.epochs:.2g} epochs)")
        if self.health:
            h = self.health
            out.append(f"embedding health: effective rank {h['effective_rank']:.1f}, alignment {h['alignment']:.3f}, "
                       f"uniformity {h['uniformity']:.3f}, nearest-neighbour cosine {h['nn_similarity']:.3f}")
        return out


def task_names(cfg: TrainConfig) -> str:
    return "+".join(f"{t.name}:{t.weight:g}" for t in cfg.tasks)


def trained_summary(ws: Workspace, resumed: str | None = None) -> TrainSummary:
    """The summary of the training that wrote the workspace's model/config.json."""
    config = ws.model_config() or {}
    trained = config.get("trained", {})
    tasks = "+".join(f"{t['name']}:{t['weight']:g}" for t in config.get("tasks", []))
    return TrainSummary(tasks, ws.encoder_file, resumed=resumed, minutes=trained.get("elapsed_s", 0) / 60,
                        steps=trained.get("steps", 0), images_per_s=trained.get("images_per_s", 0.0),
                        loss=(trained.get("final_losses") or {}).get("loss", math.nan),
                        cpu_share=trained.get("cpu_share", 1.0),
                        epochs=trained.get("images_seen", 0) / max(trained.get("train_images") or 1, 1),
                        health=trained.get("health"))


def plan(ws: Workspace, options: RunOptions) -> tuple[TrainConfig, str, str | None]:
    """(recipe, action, why) of this run, action one of "train", "resume", "skip": --resume resumes and
    --retrain trains (`curate train` is a --retrain); otherwise an interrupted training of this recipe is
    resumed and a finished one skipped."""
    cfg = train_config(ws, options)
    if options.resume or options.retrain:
        return cfg, "resume" if options.resume else "train", None
    state, why = training_state(ws, cfg)
    if state == "finished":  # a rerun after adding images embeds them with this encoder
        return cfg, "skip", why
    return (cfg, "resume", why) if state == "interrupted" else (cfg, "train", None)


def run(ws: Workspace, options: RunOptions, progress: Progress | None = None) -> TrainSummary:
    """The train step: train the workspace's encoder with the recipe of `options` (see `plan`)."""
    from curate.engines import create_engine

    cfg, action, why = plan(ws, options)
    if action == "skip":
        return TrainSummary(task_names(cfg), ws.encoder_file, skipped=why)
    engine = create_engine(options.engine, options.engine_options)
    train_workspace(ws, cfg, resume=action == "resume", progress=progress, decode_files=engine.decode_files)
    return trained_summary(ws, resumed=why)
