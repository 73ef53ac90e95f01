"""Every option of `curate run`, once: its default and its help text (curate.options builds the flags).

The CLI parses into `RunOptions`, the app's run form and `pipelines/` presets fill it, and every step
reads what it needs from it. Groups say which single-step commands take a field: `curate train`
takes train and ddp, `curate embed` embed and index, ... ; `curate run` takes them all. The engine's
own options (`--address`, `--actors`, ...) are declared by each engine (curate.engines) and reach the
steps through `engine_options`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from curate.options import option

DEFAULT_MINUTES = 10.0  # training budget when neither --minutes nor --epochs is given (nor a preset's)
TRAIN_FLAGS = ("backbone", "image_size", "minutes", "epochs", "batch_size", "lr", "optimizer", "precision", "device",
               "seed", "health_minutes", "stop_on_collapse", "checkpoint_minutes", "snapshot_minutes", "holdout",
               "train_on")


@dataclass(frozen=True)
class RunOptions:
    images: Path | None = None  # the image folder (the scan's input; later steps read the workspace's own)
    workspace: Path | None = None
    threads: int | None = option(None, "CPU threads for torch, FAISS and UMAP (default: torch's choice, the physical "
                                       "cores); fewer leaves room for other work", "process", type=int)
    seed: int | None = option(None, "random seed of every seeded step: training, the 2-D map, selections "
                                    "(default: the recipe's, 0)", "common", type=int)

    # scan: objects from annotations, frames from videos (curate.data.objects, curate.data.frames)
    annotations: Path | None = option(None, "boxes to curate as object items: a COCO instances JSON, a YOLO data.yaml "
                                            "or a folder of Pascal VOC XML (detected from the content); a rescan "
                                            "reads the workspace's own again", "scan", type=Path)
    metadata: Path | None = option(None, "a CSV or Parquet file with a `path` column: its other columns are joined "
                                         "onto the items of those files, for --where, colours and facets; a "
                                         "rescan reads it again", "scan", type=Path)
    storage_options: str | None = option(None, "JSON options for the bucket's fsspec filesystem (e.g. "
                                               "'{\"anon\": true}'); credentials are best left to the standard "
                                               "environment. Never written into the workspace", "scan")
    fps: float = option(1.0, "video frames kept per second of video", "scan", type=float)
    max_frames: int = option(300, "at most this many frames per video (spread over its whole length)", "scan",
                             type=int)
    frame_change: float | None = option(None, "keep a frame only when it differs from the last kept one by this much "
                                              "(mean absolute difference of small grey thumbnails, 0-1; e.g. 0.05) "
                                              "instead of by time", "scan", type=float)

    # which items the curation steps act on (curate.data.items)
    kind: str | None = option(None, "which items dedup, scores, label issues and selections act on: image, object "
                                    "or frame (default: images, or frames for a folder of videos; label issues: "
                                    "objects when there are annotations)", "kind", choices=["image", "object", "frame"])

    # train
    backbone: str | None = option(None, "backbone architecture (default: the preset's, resnet10 for simclr)", "train")
    image_size: int | None = option(None, "training resolution (default: from the images)", "train", type=int)
    minutes: float | None = option(None, f"wall-clock training budget (default {DEFAULT_MINUTES:g})", "train",
                                   exclusive="budget", type=float)
    epochs: float | None = option(None, "training budget in passes over the images (instead of --minutes)", "train",
                                  exclusive="budget", type=float)
    batch_size: int | None = option(None, "training batch (default: the recipe's, 256)", "train", type=int)
    lr: float | None = option(None, "learning rate per 256 images", "train", type=float)
    optimizer: str | None = option(None, "optimizer (default: the recipe's)", "train", choices=["sgd", "adamw"])
    precision: str | None = option(None, "numeric precision (default auto: bf16 where the CPU or GPU has it)",
                                   "train", choices=["auto", "bf16", "fp32"])
    holdout: float | None = option(None, "fraction held out of training for `curate eval` (default 0.1 when images "
                                         "are in class folders, else 0)", "train", type=float)
    device: str | None = option(None, "auto (default), cpu or cuda", "train")
    train_on: str | None = option(None, "which items the encoder trains on: images (frames count as images), objects "
                                        "(the crops of annotated boxes) or both (default: the recipe's, both)",
                                  "train", choices=["images", "objects", "both"])
    health_minutes: float | None = option(None, "log embedding health (effective rank, alignment, uniformity) every "
                                                "so many minutes (default 1; 0 = off)", "train", type=float)
    checkpoint_minutes: float | None = option(None, "save a resumable checkpoint every so many minutes (default 2); "
                                                    "a crash loses at most that much training", "train", type=float)
    snapshot_minutes: tuple[float, ...] | None = option(None, "also keep the encoder after these minutes of training "
                                                              "(model/snapshots/encoder-{M}min.pt)", "train",
                                                        type=float, nargs="+")
    stop_on_collapse: bool | None = option(None, "stop with a checkpoint when the embeddings collapse (default: warn "
                                                 "and go on)", "train", action="store_true")
    preset: str | None = option(None, "training preset: a task name (its recipe in curate/pretext/presets) or a "
                                      "YAML file", "train")
    task: tuple[str, ...] = option((), "pretext task NAME[:WEIGHT], repeatable (default: the recipe for the "
                                       "images' size, SimCLR)", "train", metavar="NAME[:WEIGHT]")
    resume: bool = option(False, "continue an interrupted training from its checkpoint", "resume")
    retrain: bool = option(False, "train again even when the workspace's encoder was trained with this recipe "
                                  "(default: a rerun resumes an interrupted training, skips a finished one and "
                                  "embeds new images)", "retrain")
    train_fields: Mapping[str, Any] = field(default_factory=dict)  # a preset file's train section (pipelines/)

    # ddp (torch DDP under torchrun: curate.train.launch)
    nproc: int | None = option(None, "train with torch DDP in this many processes on this machine (torchrun; gloo "
                                     "on CPU with cores/N threads each, NCCL with one GPU each); the batch size is "
                                     "the global batch, split evenly", "ddp", type=int)
    nnodes: str | None = option(None, "DDP over several machines: node count (or MIN:MAX), as torchrun takes it",
                                "ddp")
    node_rank: int | None = option(None, "this machine's rank among the nodes (static rendezvous)", "ddp", type=int)
    rdzv_endpoint: str | None = option(None, "HOST:PORT of the rendezvous, the same on every node", "ddp")
    rdzv_id: str | None = option(None, "a job id shared by the nodes of one run", "ddp")
    rdzv_backend: str | None = option(None, "rendezvous backend (default c10d)", "ddp")

    # engine (where scan, decode and embed run; each engine declares its own options)
    engine: str = option("local", "where the work runs: this process or a Ray cluster (needs pip install "
                                  "'ray[data]')", "engine")
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    # embed and index
    model: Path | None = option(None, "encoder.pt to use (default: the workspace's own)", "model", type=Path)
    embed_batch_size: int = option(256, "images per embedding batch", "embed", type=int)
    index_memory: str = option("4G", "memory the FAISS index may take: the index type follows from it, the image "
                                     "count and the dimension", "index")
    recall: float = option(0.95, "recall@10 against exact search the index is tuned to reach", "index", type=float)

    # the rest of `curate run`
    map_method: str = option("auto", "2-D map: UMAP (auto: PCA for tiny sets)", "map", choices=["auto", "umap", "pca"])
    dedup_threshold: float | None = option(None, "near-duplicate score threshold (default: calibrated)", "dedup",
                                           type=float)
    select: tuple = option((), "save a selection at the end, repeatable (e.g. kcenter:100:diverse_100)", "select",
                           metavar="STRATEGY:N[:NAME]")

    def train_overrides(self) -> dict:
        """The training flags given (not None), as TrainConfig fields."""
        values = {key: getattr(self, key) for key in TRAIN_FLAGS if getattr(self, key) is not None}
        if "snapshot_minutes" in values:
            values["snapshot_minutes"] = list(values["snapshot_minutes"])
        return values


RUN_GROUPS = ("scan", "kind", "common", "train", "retrain", "ddp", "engine", "embed", "index", "map", "dedup", "select")
