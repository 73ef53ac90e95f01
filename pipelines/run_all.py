"""Scan -> quality checks -> train -> embed -> index -> map -> dedup -> scores -> selections, driven by a YAML preset.

    python -m pipelines.run_all IMAGES -w WS [--preset pipelines/presets/quick.yaml] [--set train.minutes=5]
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from curate.progress import tqdm_progress
from curate.steps.dedup import dedup
from curate.steps.embed import embed
from curate.steps.index import build_projection, build_workspace_index
from curate.steps.label_issues import has_labels, label_issues
from curate.steps.quality import quality
from curate.steps.scan import scan
from curate.steps.scores import compute_scores
from curate.steps.select import run_selection
from curate.steps.train import train
from curate.train.presets import config_from_dict

PRESETS = Path(__file__).parent / "presets"
SECTIONS = {"train", "map", "dedup", "select"}


def load_preset(path: Path, overrides: list[str] = ()) -> dict:
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
    config_from_dict(preset.get("train", {}))  # validates the train section early
    return preset


def run_all(images: Path, workspace: Path, preset: dict) -> None:
    with tqdm_progress("pipeline") as bar:
        ws, summary = scan(images, workspace, progress=bar)
        logging.info("scan: %s", summary.line())
        quality(ws, progress=bar)
        train(ws, config_from_dict(preset.get("train", {})), progress=bar)
        embed(ws, progress=bar)
    build_workspace_index(ws)
    build_projection(ws, preset.get("map", {}).get("method", "auto"))
    dedup(ws, preset.get("dedup", {}).get("threshold"))
    compute_scores(ws)
    if has_labels(ws):
        label_issues(ws)
    for sel in preset.get("select", []):
        run_selection(ws, **sel)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", type=Path)
    p.add_argument("-w", "--workspace", type=Path, required=True)
    p.add_argument("--preset", type=Path, default=PRESETS / "default.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a preset value")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    run_all(args.images, args.workspace, load_preset(args.preset, args.set))


if __name__ == "__main__":
    main()
