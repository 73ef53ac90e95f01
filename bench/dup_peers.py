"""The peer near-duplicate finders of bench/duplicates.py, each at its documented defaults, one per process.

    .venv-bench/bin/python -m bench.dup_peers --peer {cleanvision,fastdup,imagededup} --folder F --out JSON [--work W]

Runs in `.venv-bench` (the peers' own venv, see bench/README.md), so it imports nothing from curate and
only the one peer asked for. Writes {"peer", "version", "setting", "seconds", "groups" | "pairs"}:
file names (no folders) grouped, or paired, as the peer reports them. `seconds` is the peer's call on
the folder, reading the images included, without the Python imports.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from importlib.metadata import version
from pathlib import Path

# What each peer runs and, where its documented default cannot run here, why another of its modes is used.
SETTINGS = {
    "cleanvision": "Imagelab(data_path).find_issues() (all default checks); exact_duplicates (pixel md5) + "
                   "near_duplicates (equal 64-bit pHash) sets",
    "fastdup": "fastdup.create(input_dir).run() defaults: bundled ONNX feature model (offline), k=2 neighbours, "
               "connected components at ccthreshold 0.96",
    "imagededup": "PHash().find_duplicates(image_dir) at max_distance_threshold 10 (offline mode: the CNN "
                  "default downloads MobileNetV3 weights at run time, impossible here)",
}


def cleanvision(folder: Path, work: Path) -> dict:
    from cleanvision import Imagelab

    t = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues(verbose=False)
    seconds = time.perf_counter() - t
    groups = [[Path(p).name for p in s] for kind in ("exact_duplicates", "near_duplicates") for s in lab.info[kind]["sets"]]
    return {"groups": groups, "seconds": seconds}


def fastdup(folder: Path, work: Path) -> dict:
    os.environ.setdefault("SENTRY_OPT_OUT", "1")  # no usage reports (there is no network here anyway)
    import fastdup as fd_module

    t = time.perf_counter()
    fd = fd_module.create(work_dir=str(work), input_dir=str(folder))
    fd.run(overwrite=True)
    components, _ = fd.connected_components()
    seconds = time.perf_counter() - t
    groups = []
    if len(components):
        groups = [[Path(f).name for f in g["filename"]] for _, g in components.groupby("component_id")]
    return {"groups": [g for g in groups if len(g) > 1], "seconds": seconds}


def imagededup(folder: Path, work: Path) -> dict:
    from imagededup.methods import PHash

    t = time.perf_counter()
    found = PHash().find_duplicates(image_dir=str(folder))
    seconds = time.perf_counter() - t
    return {"pairs": sorted({tuple(sorted((a, b))) for a, dups in found.items() for b in dups}), "seconds": seconds}


PEERS = {"cleanvision": cleanvision, "fastdup": fastdup, "imagededup": imagededup}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", choices=sorted(PEERS), required=True)
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, help="scratch folder for the peer's files (default: beside --out)")
    args = p.parse_args(argv)
    work = args.work or args.out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    result = PEERS[args.peer](args.folder, work)
    result = {"peer": args.peer, "version": version(args.peer), "setting": SETTINGS[args.peer], **result}
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
