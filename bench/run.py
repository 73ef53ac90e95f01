"""One command for every speed benchmark: `python -m bench.run [--quick] [--only NAME[,NAME]]`.

Prints one markdown table per benchmark and writes bench/results/<timestamp>.json and latest.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import embed_speed, map_speed, search_speed, select_speed, train_speed  # noqa: E402
from bench.config import REPO, BenchConfig, full_config, quick_config  # noqa: E402
from bench.context import Context  # noqa: E402
from bench.machine import load_average, machine_facts  # noqa: E402
from bench.measure import PeakMemory  # noqa: E402
from bench.report import render, write_results  # noqa: E402

BENCHMARKS = {"train": train_speed, "embed": embed_speed, "search": search_speed, "map": map_speed,
              "select": select_speed}
log = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes and budgets: under 3 minutes on 2 cores")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help=f"run only these (repeatable or comma-separated): {', '.join(BENCHMARKS)}")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (train and embed)")
    p.add_argument("--workspace", type=Path, help="use this workspace's real embeddings for search/map/select")
    p.add_argument("--images", type=Path, help="JPEG folder for train/embed (default: shared CIFAR-10 train)")
    p.add_argument("--n-images", type=int, help="images taken from --images (class-balanced)")
    p.add_argument("--train-seconds", type=float, help="training budget per precision")
    p.add_argument("--batch-size", type=int, help="training batch size (default: TrainConfig's 256)")
    p.add_argument("--search-n", type=int, help="vectors in the search index")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="results folder")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> BenchConfig:
    cfg = quick_config() if args.quick else full_config()
    overrides = {"images": args.images, "n_images": args.n_images, "train_seconds": args.train_seconds,
                 "train_batch": args.batch_size, "search_n": args.search_n, "workspace": args.workspace}
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    cfg.device = args.device
    if cfg.workspace is not None:
        cfg.workspace = cfg.workspace.expanduser().resolve()
    return cfg


def selected(only: list[str]) -> list[str]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}: choose from {', '.join(BENCHMARKS)}")
    return names


def run_one(name: str, ctx: Context) -> dict:
    """One benchmark with its wall time and peak memory; a failure is recorded, not raised."""
    module = BENCHMARKS[name]
    log.info("== %s", name)
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        try:
            result = module.run(ctx)
            section = {"title": module.TITLE, "rows": result.rows, "notes": result.notes}
        except Exception as err:  # keep the other benchmarks' results of a long run
            traceback.print_exc()
            section = {"title": module.TITLE, "error": f"{type(err).__name__}: {err}", "rows": [], "notes": []}
    return {**section, "wall_s": round(time.perf_counter() - t0, 1), **mem.to_dict()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    names, cfg = selected(args.only), make_config(args)
    results = {"created": dt.datetime.now().isoformat(timespec="seconds"), "config": cfg.to_dict(),
               "machine": machine_facts(cfg.device, REPO), "benchmarks": {}}
    start = time.perf_counter()
    with Context(cfg) as ctx:
        for name in names:
            results["benchmarks"][name] = run_one(name, ctx)
    results["machine"]["load_avg_end"] = load_average()
    results["wall_s"] = round(time.perf_counter() - start, 1)
    path = write_results(results, args.out)
    print(render(results))
    for note in cfg.notes:
        print(f"- {note}")
    print(f"\nresults: {path} (and latest.json); total {results['wall_s']:.0f} s")
    return 1 if any("error" in s for s in results["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
