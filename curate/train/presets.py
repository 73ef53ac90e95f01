"""Training presets: YAML files of TrainConfig fields, one per pretext task (`curate train --preset NAME`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from curate.pretext.base import TaskSpec, parse_task
from curate.train.config import TrainConfig

PRESET_DIR = Path(__file__).resolve().parent.parent / "pretext" / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str | Path) -> dict:
    """The dict of a preset given by task name (a file in curate/pretext/presets) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no preset {name_or_path!r}; built-in presets: {', '.join(preset_names())}")
    return yaml.safe_load(path.read_text()) or {}


def config_from_dict(d: dict) -> TrainConfig:
    """A TrainConfig from plain values, rejecting unknown fields by name; tasks as dicts or 'name:weight'."""
    d = dict(d)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(known)}")
    tasks = [TaskSpec(**t) if isinstance(t, dict) else parse_task(str(t)) for t in d.pop("tasks", ["simclr"])]
    return TrainConfig(tasks=tasks, **d)


SMALL_IMAGES = 32  # automatic training sizes up to this get the small-image recipe, larger ones the photo recipe


def default_recipe(image_size: int) -> dict:
    """What `curate train` uses when no preset or task is named, chosen by the training resolution:
    presets/default_small.yaml up to 32 px, presets/default_photos.yaml above (the winners of
    bench/ssl_quality.py at equal wall clock; README, "Embeddings per CPU-minute"). Its `recipe` field
    says which and why, and lands in model/config.json."""
    d = load_preset("default_small" if image_size <= SMALL_IMAGES else "default_photos")
    d["recipe"] = d.get("recipe", "").format(size=image_size)
    return d
