"""Object embeddings on coco128-detect: crop with context vs RoIAlign vs the parent image's vector, and what to train on.

    python -m bench.object_embedding [--minutes 3] [--factors 2 4] [--data ../shared/data/coco128-detect]

The 128 photos and their 929 YOLO boxes (80 classes) are scanned into a workspace as image and object
items (`curate scan --annotations data.yaml`), decoded once into the training cache, and three encoders
are trained from the same seed for the same `--minutes` each: on the images, on the objects (their
crops with context) and on both (`--train-on`). A fourth, random-weights encoder is the floor.
Each encoder embeds every object by
  crop     its crop with context (curate.data.sources.crop_with_context) at the encoder's image size,
           from the decode cache: exactly what `curate embed` writes into embeddings.npy for an object;
  roi xF   RoIAlign over the layer4 map of its parent resized to a shorter side of F x image size
           (curate.embed.roi);
  parent   the parent image's own vector (what an object would get without object items).
Quality: leave-one-out weighted kNN (cosine, votes exp(sim / 0.1), DESIGN.md section 5) over the objects,
k = 20 and k = 1, scored on the objects whose class has at least two; `loo` lets the other objects of
the same photo vote (a parent vector then matches its siblings exactly), `other photos` keeps only
neighbours from other photos (the fair test of the vector itself).
Speed: objects/s from the files (decode: the crop, or the parent at its size, plus the model) and of the
model alone. Prints markdown tables and writes bench/results/object_embedding-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table
from curate import storage
from curate.data.manifest import ok_mask
from curate.data.sources import decode_item, item_sources, parent_image
from curate.embed.encoder import embed_images
from curate.embed.roi import embed_boxes_roi, roi_input
from curate.models import BackboneSpec, build_backbone
from curate.steps.options import RunOptions
from curate.steps.scan import scan
from curate.steps.train import build_image_cache, resolve_config, train_config, training_kinds_mask
from curate.train import train as train_loop
from curate.transforms.views import IMAGENET_MEAN, IMAGENET_STD

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "coco128-detect"


def loo_knn(x: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, other_groups: bool,
            temperature: float = 0.1) -> float:
    """Leave-one-out weighted kNN accuracy over (N, D) L2-normalised `x`, labels `y` (ints), scored on
    the rows whose class has another member; `other_groups`: neighbours only from other groups (photos)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    sims = t @ t.T
    sims.fill_diagonal_(-np.inf)
    if other_groups:
        g = torch.from_numpy(groups)
        sims[g[:, None] == g[None, :]] = -np.inf
    counts = np.bincount(y)
    scored = torch.from_numpy(np.flatnonzero(counts[y] >= 2))
    top, idx = sims[scored].topk(k, dim=1)
    weights = torch.where(torch.isfinite(top), (top / temperature).exp(), torch.zeros_like(top))
    labels = torch.from_numpy(y.astype(np.int64))
    votes = torch.zeros(len(scored), int(y.max()) + 1).scatter_add_(1, labels[idx], weights)
    return float((votes.argmax(1) == labels[scored]).float().mean())


def quality(vectors: np.ndarray, y: np.ndarray, parents: np.ndarray) -> dict:
    return {f"kNN@{k} {name} %": round(100 * loo_knn(vectors, y, parents, k, other), 1)
            for name, other in (("loo", False), ("other photos", True)) for k in (20, 1)}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def train_encoders(ws, cfg, images, minutes_dir: Path) -> tuple[dict, list[dict]]:
    """{name: eval-mode backbone} for each --train-on and random weights, and a row per training."""
    manifest = ws.manifest()
    nets, rows = {}, []
    for train_on in ("images", "objects", "both"):
        run_cfg = dataclasses.replace(cfg, train_on=train_on)
        ids = np.flatnonzero(ok_mask(manifest) & training_kinds_mask(manifest, train_on))
        result = train_loop(images, ids, run_cfg, minutes_dir / train_on)
        nets[f"trained on {train_on}"] = result.backbone.eval()
        rows.append({"train on": train_on, "train items": len(ids), "minutes": round(result.elapsed_s / 60, 2),
                     "steps": result.steps, "items/s": round(result.images_per_s, 1),
                     "epochs": round(result.images_seen / len(ids), 1), "cpu share": result.cpu_share,
                     "loss": round(result.last_losses.get("loss", float("nan")), 3)})
        print(markdown_table(rows[-1:]), flush=True)
    torch.manual_seed(cfg.seed)
    nets["random weights"] = build_backbone(BackboneSpec(cfg.backbone, cfg.stem, cfg.image_size)).eval()
    return nets, rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--minutes", type=float, default=3.0, help="training budget of each encoder")
    p.add_argument("--factors", type=float, nargs="+", default=[2.0, 4.0],
                   help="RoIAlign: the parent's shorter side as multiples of the encoder's image size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    work = Path(tempfile.mkdtemp(prefix="object_embedding-"))
    ws, _ = scan(args.data, work / "ws", annotations=args.data / "data.yaml")
    manifest = ws.manifest()
    options = RunOptions(minutes=args.minutes, seed=args.seed, holdout=0.0, health_minutes=0.0)
    cfg = resolve_config(ws, train_config(ws, options))
    images, decode_s = timed(lambda: build_image_cache(ws, cfg))
    size = cfg.image_size
    objects = np.flatnonzero(ok_mask(manifest) & (manifest["kind"] == "object").to_numpy())
    parents = manifest["parent"].to_numpy(dtype=np.int64, na_value=-1)[objects]
    names = manifest["label"].astype(str).to_numpy()[objects]
    classes, y = np.unique(names, return_inverse=True)
    sources = item_sources(ws.root, manifest, ws.frame_store_dir)
    parent_ids = np.unique(parents)
    # decode costs, the same for every encoder: the crops, the parents at the cache size, the parents for RoIAlign
    _, crop_decode_s = timed(lambda: [decode_item(sources[i], size) for i in objects])
    _, parent_decode_s = timed(lambda: [decode_item(sources[i], size) for i in parent_ids])
    boxes = manifest[["x0", "y0", "x1", "y1"]].to_numpy(dtype=float)
    roi_inputs, roi_decode_s = {}, {}
    for f in args.factors:
        def prepare(f=f):
            return [roi_input(parent_image(sources[pid]), boxes[objects[parents == pid]], round(f * size))
                    for pid in parent_ids]
        roi_inputs[f], roi_decode_s[f] = timed(prepare)
    order = np.concatenate([np.flatnonzero(parents == pid) for pid in parent_ids])  # RoIAlign's output order
    print(f"{len(objects)} objects of {len(classes)} classes in {len(parent_ids)} photos; image size {size}, "
          f"backbone {cfg.backbone} ({cfg.stem} stem); decode cache {decode_s:.1f}s", flush=True)

    nets, train_rows = train_encoders(ws, cfg, images, work / "models")
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    n = len(objects)
    rows = []
    for encoder, net in nets.items():
        crop, crop_s = timed(lambda: embed_images(net, images, objects, mean, std))
        parent_vecs, parent_s = timed(lambda: embed_images(net, images, parent_ids, mean, std))
        methods = {"crop": (crop, crop_decode_s, crop_s),
                   "parent": (parent_vecs[np.searchsorted(parent_ids, parents)], parent_decode_s, parent_s)}
        for f in args.factors:
            imgs, bxs = zip(*roi_inputs[f])
            roi, roi_s = timed(lambda: embed_boxes_roi(net, list(imgs), list(bxs), mean, std))
            vecs = np.empty_like(roi)
            vecs[order] = roi
            methods[f"roi x{f:g} ({round(f * size)} px)"] = (vecs, roi_decode_s[f], roi_s)
        for method, (vecs, dec_s, model_s) in methods.items():
            rows.append({"encoder": encoder, "method": method, **quality(vecs, y, parents),
                         "objects/s": round(n / (dec_s + model_s), 1), "objects/s model only": round(n / model_s, 1)})
            print(markdown_table(rows[-1:]), flush=True)
    facts["load_avg_end"] = load_average()
    scored = int((np.bincount(y)[y] >= 2).sum())
    print(f"\n### Objects: crop vs RoIAlign vs parent image ({args.minutes:g} min per encoder)\n")
    print(summary_line(facts) + "\n")
    print(f"coco128-detect: {n} objects, {len(classes)} classes, {scored} scored (class with >= 2 objects), "
          f"{len(parent_ids)} photos; image size {size}, {cfg.backbone} ({cfg.stem} stem), seed {args.seed}\n")
    print(markdown_table(train_rows) + "\n")
    print(markdown_table(rows))
    out = args.out / f"object_embedding-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "args": {k: str(v) for k, v in vars(args).items()},
                                        "image_size": size, "backbone": cfg.backbone, "stem": cfg.stem,
                                        "objects": n, "classes": len(classes), "scored": scored,
                                        "decode_s": {"cache": decode_s, "crops": crop_decode_s,
                                                     "parents": parent_decode_s,
                                                     "roi": {str(f): s for f, s in roi_decode_s.items()}},
                                        "training": train_rows, "rows": rows}, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
