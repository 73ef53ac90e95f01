"""`curate train`: SSL pretraining on the workspace's images; exports model/encoder.pt + config.json."""
from __future__ import annotations

import contextlib
import logging
import os

import numpy as np
import torch

from curate import storage
from curate.data.cache import DecodeFiles, image_cache
from curate.data.manifest import fingerprint, ok_mask
from curate.data.split import holdout_mask
from curate.distributed import current as current_world
from curate.locks import locked
from curate.models import BackboneSpec
from curate.models.vit import VIT_SIZES, vit_stem
from curate.progress import Progress
from curate.train import TrainConfig, TrainResult, train as train_loop
from curate.train.config import auto_image_size, auto_stem
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD
from curate.workspace import Workspace, now

log = logging.getLogger(__name__)


def data_image_size(manifest) -> int:
    """The training resolution the usable images call for (auto_image_size of their median short side)."""
    ok = manifest[ok_mask(manifest)]
    if ok.empty:
        raise ValueError("no usable images to train on: every image was skipped (see manifest.parquet, column status)")
    return auto_image_size(float(np.median(np.minimum(ok["width"], ok["height"]))))


def resolve_config(ws: Workspace, cfg: TrainConfig) -> TrainConfig:
    """Fill automatic fields (image size, stem, budget) from the data."""
    if cfg.image_size is None:
        cfg.image_size = data_image_size(ws.manifest())
    if cfg.backbone in VIT_SIZES:  # a ViT's stem is its patch size, which here fixes the token grid
        cfg.stem = vit_stem(cfg.image_size, cfg.stem)
    elif cfg.stem is None:
        cfg.stem = auto_stem(cfg.image_size)
    if cfg.minutes is None and cfg.epochs is None:
        cfg.minutes = 10.0
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
    """(state, why) of this workspace's training for the recipe `cfg` (resolved in place):
    "finished" (its encoder was trained with this recipe: nothing to do), "interrupted" (a checkpoint of
    this recipe stopped before its budget: resume it) or "new" (train from scratch)."""
    cfg = resolve_config(ws, cfg)
    run_file, ckpt = ws.model_dir / "run_config.json", ws.model_dir / "checkpoint.pt"
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


def train(ws: Workspace, cfg: TrainConfig, resume: bool = False, progress: Progress | None = None,
          decode_files: DecodeFiles | None = None) -> TrainResult:
    """Train the workspace's encoder; one training at a time per workspace (a second gets WorkspaceBusy).
    `decode_files`: how the decoded-image cache decodes (`curate.steps.scan.image_decoder`; default here).

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
    if resume and (ws.model_dir / "checkpoint.pt").exists() and (ws.model_dir / "run_config.json").exists():
        budget = {"minutes": cfg.minutes, "epochs": None} if cfg.minutes else {"epochs": cfg.epochs} if cfg.epochs else {}
        watch = {k: getattr(cfg, k) for k in WATCHING}
        cfg = TrainConfig.from_dict({**storage.read_json(ws.model_dir / "run_config.json"), **budget, **watch})
        log.info("resuming with the interrupted run's configuration")
    return resolve_config(ws, cfg)


def _train(ws: Workspace, cfg: TrainConfig, resume: bool, progress: Progress | None,
           decode_files: DecodeFiles | None = None) -> TrainResult:
    cfg = run_config(ws, cfg, resume)
    manifest = ws.manifest()
    images = image_cache(ws.root, manifest, cfg.image_size, ws.cache_dir, progress=progress, decode_files=decode_files)
    usable = ok_mask(manifest)
    train_ids = np.flatnonzero(usable & ~holdout_mask(manifest["id"].to_numpy(), cfg.holdout, cfg.seed))
    if len(train_ids) < 2:
        raise ValueError(f"only {len(train_ids)} usable training images in {ws.root}: at least 2 are needed")
    world = current_world()
    if world.main:
        storage.write_json(ws.model_dir / "run_config.json", cfg.to_dict())
    result = train_loop(images, train_ids, cfg, ws.model_dir, resume=resume, progress=progress)
    if not world.main:  # rank 0 exports
        return result
    storage.save_torch(ws.encoder_file, {k: v.contiguous() for k, v in result.backbone.state_dict().items()})
    storage.write_json(ws.model_dir / "config.json", {
        "architecture": cfg.backbone, "stem": cfg.stem, "image_size": cfg.image_size,
        "backbone": BackboneSpec(cfg.backbone, cfg.stem, cfg.image_size).to_dict(),
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "tasks": [t.to_dict() for t in cfg.tasks], "recipe": cfg.recipe,
        "budget": {"minutes": cfg.minutes, "epochs": cfg.epochs},
        "trained": {"steps": result.steps, "images_seen": result.images_seen, "elapsed_s": round(result.elapsed_s, 1),
                    "images_per_s": round(result.images_per_s, 1), "final_losses": result.last_losses,
                    "train_images": int(len(train_ids)), "health": result.health,
                    "cpu_share": result.cpu_share, "threads": torch.get_num_threads(),
                    "world_size": result.world_size, "nproc": world.local_size},
        "holdout": {"fraction": cfg.holdout, "seed": cfg.seed}, "data_fingerprint": fingerprint(manifest),
        "train_config": cfg.to_dict(), "created": now(),
    })
    return result
