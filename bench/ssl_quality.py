"""Representation quality per CPU-minute: each recipe trained for the same wall-clock budget on
CIFAR-10 minus a held-out split, scored by weighted kNN on the held-out images.

    python -m bench.ssl_quality [--recipe simclr --recipe byol ...] [--minutes 5] [--bank 10000]
    python -m bench.ssl_quality --all-tasks --minutes 2       # every registered task with its preset
    python -m bench.ssl_quality --floor-only                  # just the random-weights row

Every run ends with the floor: the default backbone with random weights, scored the same way.

A recipe is a preset name (curate/pretext/presets) optionally followed by overrides,
e.g. `simclr,stem=small,batch_size=512`. Prints a markdown table and writes
bench/results/ssl_quality-<timestamp>.json. Labels are used only for scoring.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from curate.data.cache import image_cache
from curate.data.manifest import labels as manifest_labels, ok_mask
from curate.data.split import holdout_mask
from curate.embed import embed_images
from curate.evaluate import weighted_knn
from curate.models import BackboneSpec, build_backbone
from curate.steps.scan import scan
from curate.train import train
from curate.train.config import auto_stem
from curate.train.presets import config_from_dict, load_preset
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD

from bench.measure import PeakMemory

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.ssl_quality")


def recipe_config(recipe: str, minutes: float, image_size: int):
    """'preset,key=value,...' -> TrainConfig with the budget and holdout set."""
    name, *overrides = recipe.split(",")
    d = load_preset(name)
    for item in overrides:
        key, _, value = item.partition("=")
        d[key.strip()] = yaml.safe_load(value)
    cfg = config_from_dict(d)
    cfg.minutes, cfg.epochs, cfg.holdout, cfg.image_size = minutes, None, 0.1, image_size
    if not cfg.stem:
        from curate.models.vit import VIT_SIZES, vit_stem
        cfg.stem = vit_stem(image_size) if cfg.backbone in VIT_SIZES else auto_stem(image_size)
    return cfg


def score(backbone, images, bank, test, y) -> float:
    emb = {}
    for split, rows in (("bank", bank), ("test", test)):
        emb[split] = embed_images(backbone, images, rows, IMAGENET_MEAN, IMAGENET_STD)
    return weighted_knn(emb["bank"], y[bank], emb["test"], y[test])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", action="append", help="preset[,key=value...] (repeatable; default simclr)")
    p.add_argument("--all-tasks", action="store_true", help="add every registered pretext task (its preset)")
    p.add_argument("--floor-only", action="store_true", help="score only the random-weights floor (no training)")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget per recipe")
    p.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-train")
    p.add_argument("--bank", type=int, default=10_000, help="kNN bank: this many training images")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-ssl-bench"), help="manifest + decode cache")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    ws, _ = scan(args.images, args.workdir / "ws")
    manifest = ws.manifest()
    images = image_cache(ws.root, manifest, 32, ws.cache_dir)
    classes = {c: i for i, c in enumerate(sorted(set(manifest["label"].dropna())))}
    y = np.array([classes.get(l, -1) for l in manifest_labels(manifest)])
    held = holdout_mask(manifest["id"].to_numpy(), 0.1, 0)
    usable = ok_mask(manifest)
    train_ids, test = np.flatnonzero(usable & ~held), np.flatnonzero(usable & held)
    bank = np.sort(np.random.default_rng(0).choice(train_ids, min(args.bank, len(train_ids)), replace=False))

    rows = []
    recipes = [] if args.floor_only else list(args.recipe or ([] if args.all_tasks else ["simclr"]))
    if args.all_tasks:
        from curate.pretext import TASKS
        recipes += [t for t in TASKS.names() if t not in recipes]
    for recipe in recipes:
        cfg = recipe_config(recipe, args.minutes, 32)
        log.info("%s: training %.1f min", recipe, args.minutes)
        out = args.workdir / "runs" / recipe.replace(",", "_").replace("=", "-")
        t = time.perf_counter()
        with PeakMemory() as mem:  # training only: its own high-water mark
            result = train(images, train_ids, cfg, out)
        acc = score(result.backbone, images, bank, test, y)
        rows.append({"recipe": recipe, "backbone": cfg.backbone, "minutes": args.minutes, "steps": result.steps,
                     "images_seen": result.images_seen, "train img/s": round(result.images_per_s, 1),
                     "peak_rss_mb": round(mem.rss_mb), "knn_top1": round(acc, 4),
                     "wall_s": round(time.perf_counter() - t, 1)})
        log.info("%s: kNN %.2f%%", recipe, 100 * acc)

    # The floor every task has to clear: the default backbone with random weights, same protocol.
    cfg = recipe_config("simclr", args.minutes, 32)
    torch.manual_seed(0)
    untrained = build_backbone(BackboneSpec(cfg.backbone, cfg.stem)).eval()
    acc = score(untrained, images, bank, test, y)
    rows.append({"recipe": "(random weights, no training)", "backbone": cfg.backbone, "minutes": 0, "steps": 0,
                 "images_seen": 0, "train img/s": None, "peak_rss_mb": None, "knn_top1": round(acc, 4), "wall_s": 0})
    log.info("random weights: kNN %.2f%%", 100 * acc)

    header = list(rows[0])
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(r[h]) for h in header) + " |")
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out_dir / f"ssl_quality-{stamp}.json").write_text(json.dumps(
        {"rows": rows, "bank": int(len(bank)), "test": int(len(test)), "protocol": "weighted kNN k=200 T=0.1"}, indent=2))


if __name__ == "__main__":
    main()
