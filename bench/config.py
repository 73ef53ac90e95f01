"""Benchmark settings: one dataclass, two presets (full and --quick), a few CLI overrides."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUNDLED_IMAGES = REPO / "data" / "cifar10-sample"  # 2,000 real CIFAR-10 JPEGs shipped with the repo
SHARED_IMAGES = REPO.parent / "shared" / "data" / "cifar10-train"  # 50,000, present on dev machines and CI


@dataclass
class BenchConfig:
    """Everything a benchmark run depends on; saved into the results JSON."""

    quick: bool = False
    device: str = "auto"  # auto | cpu | cuda, as curate's --device
    seed: int = 0
    workspace: Path | None = None  # real embeddings for search / map / select instead of synthetic ones
    # images for train and embed: the first n_images (balanced over class folders) of `images`
    images: Path = SHARED_IMAGES
    n_images: int = 10_000
    # train: curate.train.train with TrainConfig defaults except the budget (and batch size in --quick)
    task: str = "simclr"
    train_seconds: float = 90.0
    train_batch: int = 256  # TrainConfig's default
    precisions: tuple[str, ...] = ("bf16", "fp32")
    limit_seconds: float = 45.0  # time box of each in-memory limit loop (at least 1 + 3 steps)
    # embed
    embed_batch: int = 256  # curate's default
    embed_limit_seconds: float = 15.0
    embed_precision: str = "auto"  # what `curate embed` uses
    # search
    search_n: int = 50_000
    queries: int = 1_000
    k: int = 10
    hnsw_ef: tuple[int, ...] = (16, 64)  # 16 is FAISS's default efSearch
    # 2-D map and selection
    umap_sizes: tuple[int, ...] = (10_000, 50_000)
    kcenter_n: int = 1_000  # selection: n picks from a pool of kcenter_pool, every strategy
    kcenter_pool: int = 50_000
    select_large: tuple[int, int] | None = (1_000_000, 10_000)  # (pool, n) on synthetic vectors
    select_dim: int = 128  # width of the synthetic selection pools
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


def full_config() -> BenchConfig:
    """~15 minutes on a quiet 2-core CPU (mostly ResNet-18 compute); minutes on a GPU."""
    cfg = BenchConfig()
    if not SHARED_IMAGES.is_dir():
        cfg.images = BUNDLED_IMAGES
        cfg.n_images = 2_000
        cfg.notes.append(f"{SHARED_IMAGES} absent: train/embed use the bundled 2,000-image sample")
    return cfg


def quick_config() -> BenchConfig:
    """Under 3 minutes on a 2-core CPU: a smoke run with the same code paths and smaller sizes."""
    return BenchConfig(quick=True, images=BUNDLED_IMAGES, n_images=2_000, train_seconds=15.0, train_batch=32,
                       limit_seconds=5.0, embed_limit_seconds=4.0, search_n=10_000, queries=300,
                       umap_sizes=(2_000,), kcenter_n=200, kcenter_pool=10_000, select_large=None,
                       notes=["--quick: train batch 32 (default 256) so a 15 s budget holds several steps"])
