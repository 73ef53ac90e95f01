"""`curate run` driven by a YAML preset: the same pipeline (curate.pipeline), its options from a file.

    python -m pipelines.run_all IMAGES -w WS [--preset pipelines/presets/quick.yaml] [--set train.minutes=5]

A preset's sections: `train` (any TrainConfig field, on top of what `curate run` would choose: the
default recipe for the images' size, or the first task's own recipe when `tasks` are named),
`map` (method), `dedup` (threshold: null = calibrated) and `select` (selections saved at the end).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from curate import pipeline
from curate.cli import configure_logging
from curate.steps.options import RunOptions
from curate.train.presets import config_from_dict

PRESETS = Path(__file__).parent / "presets"
SECTIONS = {"train", "map", "dedup", "select"}


def load_run_preset(path: Path, overrides: list[str] = ()) -> dict:
    """YAML preset with `a.b=value` overrides (values parsed as YAML), validated against the dataclasses."""
    preset = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.strip().split(".")
        node = preset
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    unknown = set(preset) - SECTIONS
    if unknown:
        raise ValueError(f"unknown preset section(s) {sorted(unknown)}; known: {sorted(SECTIONS)}")
    config_from_dict(preset.get("train") or {})  # validates the train section early
    return preset


def preset_options(images: Path, workspace: Path, preset: dict) -> RunOptions:
    """`curate run IMAGES -w WORKSPACE`'s options (RunOptions' defaults) with the preset's settings in place."""
    defaults = RunOptions()
    return RunOptions(images=Path(images), workspace=Path(workspace), train_fields=preset.get("train") or {},
                      map_method=(preset.get("map") or {}).get("method", defaults.map_method),
                      dedup_threshold=(preset.get("dedup") or {}).get("threshold", defaults.dedup_threshold),
                      select=tuple(preset.get("select") or ()))


def run_all(images: Path, workspace: Path, preset: dict, on_summary=None) -> pipeline.RunSummary:
    """`curate run` on `images` into `workspace` with the preset's settings: the same steps
    (curate.pipeline.STEPS), the same defaults for whatever the preset leaves out."""
    return pipeline.run(preset_options(images, workspace, preset), on_summary=on_summary)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", type=Path)
    p.add_argument("-w", "--workspace", type=Path, required=True)
    p.add_argument("--preset", type=Path, default=PRESETS / "default.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    args = p.parse_args(argv)
    configure_logging()
    summary = run_all(args.images, args.workspace, load_run_preset(args.preset, args.set),
                      on_summary=lambda step, summary: print("\n".join(summary.lines())))
    print("\n".join(summary.lines()))


if __name__ == "__main__":
    main()
