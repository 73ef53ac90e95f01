"""Training configuration (a typed dataclass, saved next to every checkpoint)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from curate.pretext.base import TaskSpec


@dataclass
class TrainConfig:
    tasks: list[TaskSpec] = field(default_factory=lambda: [TaskSpec("simclr")])
    recipe: str = ""  # which recipe this is and why it was chosen (the automatic default says so)
    backbone: str = "resnet10"  # per CPU-minute it beats resnet18 (README, Figures); same 512-d features
    stem: str | None = None  # imagenet | small | small_pool; None: automatic from the image size
    image_size: int | None = None  # None: automatic from the images' median size
    view_size: int | None = None  # side of the training views; None: image_size. Smaller trains faster
    minutes: float | None = None  # wall-clock budget; the schedule spans it
    epochs: float | None = None  # used when no minutes are given
    batch_size: int = 256
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 0.002  # per 256 images, scaled linearly with batch size
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of the budget spent warming up
    ema: float = 0.0  # > 0: export an exponential moving average of the weights (this momentum per step)
    precision: str = "auto"  # auto | bf16 | fp32
    train_on: str = "both"  # images | objects | both: the item kinds trained on (frames count as images)
    holdout: float = 0.0  # fraction of images (by id hash) kept out of training for evaluation
    seed: int = 0
    checkpoint_minutes: float = 2.0
    snapshot_minutes: list[float] = field(default_factory=list)  # keep the encoder at these minutes (a quality curve)
    log_every: int = 10  # steps between lines of train_log.jsonl (the first step is always logged)
    device: str = "auto"  # auto | cpu | cuda
    health_minutes: float = 1.0  # embedding health (rank, alignment, uniformity) every so often; 0 = off
    health_images: int = 256  # fixed training images the health figures are measured on
    stop_on_collapse: bool = False  # stop with a checkpoint when the representation collapses

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["tasks"] = [TaskSpec(**t) if isinstance(t, dict) else t for t in d.get("tasks", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def auto_stem(image_size: int) -> str:
    """Half-resolution small stem for tiny images (3x faster per step on a CPU), full stem for photos."""
    return "small_pool" if image_size <= 64 else "imagenet"


def auto_image_size(median_short_side: float) -> int:
    """A training resolution that is cheap on a CPU and keeps what the images hold."""
    for size in (32, 64, 96):
        if median_short_side <= size * 1.5:
            return size
    return 128
