"""Manifest, filters and rescans at millions of images, each next to its floor in the same run.

    python -m bench.manifest_scale [--rows 10000000] [--files 1000000] [--workdir /tmp/curate-manifest-bench]

Filters: a synthetic manifest of --rows images as `curate scan` + `curate quality` leave it (paths in
1,000 class folders, sizes, sha1, seven quality flags) plus 1% tagged, written as the workspace's
manifest.parquet. Timed: reading it (`Workspace.manifest`, what every command and the app do first)
and `filter_mask` with what a person sets in the app (3 labels, skip blurry and dark, a minimum
side, a tag); the floor is pyarrow reading only the columns the filter touches. Then `--where` (DuckDB):
the same filter as an expression (checked to keep the same rows) and a metadata filter (capture time and
camera), each next to numpy on the same columns.

Rescan: a tree of --files empty files in 1,000 folders (made once under --workdir) whose previous
manifest says they are ok images of that size and mtime, as after a first scan. Timed: `scan_folder`
over the unchanged tree (it must only list and stat: reading a file fails the benchmark), next to the
floor of os.walk + os.stat of every file.
Prints a markdown table and writes bench/results/manifest_scale-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.machine import load_average, machine_facts, summary_line
from bench.measure import PeakMemory
from bench.report import markdown_table
from curate import storage
from curate.data.manifest import MANIFEST_COLUMNS
from curate.data.where import where_mask
from curate.quality.checks import FLAG_COLUMNS
from curate.select.filters import Filters, filter_mask
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
FOLDERS = 1000


def synthetic_manifest(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    folder = rng.integers(0, FOLDERS, n)
    table = pd.DataFrame({
        "id": np.arange(n), "path": pd.array([f"class_{f:04d}/img_{i:09d}.jpg" for i, f in enumerate(folder)], "string"),
        "label": pd.array([f"class_{f:04d}" for f in folder], "string"),
        "width": rng.integers(32, 2000, n), "height": rng.integers(32, 2000, n), "bytes": rng.integers(1000, 10**6, n),
        "sha1": pd.array([f"{v:040x}" for v in rng.integers(0, 2**63, n)], "string"),
        "status": pd.array(np.where(rng.random(n) < 0.001, "corrupt: truncated", "ok"), "string"),
        "mtime": rng.integers(1.6e18, 1.7e18, n),
        # what a team filters on first (EXIF, --metadata): capture time over two years, one of 40 cameras
        "captured": pd.to_datetime(rng.integers(1.67e18, 1.73e18, n)),
        "camera_model": pd.array([f"cam_{c:02d}" for c in rng.integers(0, 40, 2_000)], "string")[
            rng.integers(0, 2_000, n)]})
    for flag in FLAG_COLUMNS:
        table[flag] = pd.array(rng.random(n) < 0.02, "boolean")
    return table


def timed(fn):
    with PeakMemory() as mem:
        t = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t
    return out, seconds, mem.rss_mb


def filter_rows(n: int, workdir: Path) -> list[dict]:
    ws = Workspace(workdir / f"ws_{n}")
    ws.path.mkdir(parents=True, exist_ok=True)
    if not ws.manifest_file.exists():
        ws.save_manifest(synthetic_manifest(n))
    tagged = np.random.default_rng(1).choice(n, n // 100, replace=False)
    tags = pd.DataFrame({"id": tagged, "tag": "to_label"})
    f = Filters(labels=["class_0001", "class_0500", "class_0999"], skip_flags=["blurry", "dark"], min_side=64,
                tags=["to_label"])
    manifest, read_s, read_rss = timed(ws.manifest)
    mask, filter_s, _ = timed(lambda: filter_mask(manifest, f, tags))
    columns = ["id", "status", "label", "width", "height", "blurry", "dark"]
    _, floor_s, _ = timed(lambda: pq.read_table(ws.manifest_file, columns=columns))
    rows = [{"rows": n, "step": "read manifest.parquet (every column)", "seconds": round(read_s, 2),
             "floor: pyarrow, the 7 filter columns only": round(floor_s, 2), "peak RSS MB": round(read_rss)},
            {"rows": n, "step": f"filter_mask (3 labels, 2 flags, min side, a tag): {int(mask.sum()):,} kept",
             "seconds": round(filter_s, 2), "floor: pyarrow, the 7 filter columns only": None, "peak RSS MB": None}]
    return rows + where_rows(manifest, f)


def where_rows(manifest: pd.DataFrame, f: Filters) -> list[dict]:
    """`--where` (DuckDB over the manifest) for the same filter as `filter_mask` (its tag aside: tags are not
    manifest columns), checked to keep the same rows, and for a metadata filter, each next to numpy on the
    same columns (the floor)."""
    same = ("label IN ('class_0001', 'class_0500', 'class_0999') AND NOT coalesce(blurry, false) "
            "AND NOT coalesce(dark, false) AND least(width, height) >= 64 AND status = 'ok'")
    metadata = "camera_model = 'cam_07' AND captured >= '2024-06-01'"
    untagged = Filters(labels=f.labels, skip_flags=f.skip_flags, min_side=f.min_side)
    expected = filter_mask(manifest, untagged, pd.DataFrame({"id": [], "tag": []}))
    where_mask(manifest.head(10), "id >= 0")  # DuckDB's import and first connection, not the filter's cost
    out = []
    for expression, floor in ((same, None),  # its comparison is filter_mask's row above: today's filters
                              (metadata, lambda: (manifest["camera_model"] == "cam_07").to_numpy(bool)
                               & (manifest["captured"] >= pd.Timestamp("2024-06-01")).to_numpy(bool))):
        mask, seconds, _ = timed(lambda: where_mask(manifest, expression))
        floor_s = timed(floor)[1] if floor else None
        if expression == same:
            assert (mask == expected).all(), "--where and filter_mask disagree"
        out.append({"rows": len(manifest), "step": f"--where {expression}: {int(mask.sum()):,} kept",
                    "seconds": round(seconds, 2), "floor: pyarrow, the 7 filter columns only": None,
                    "floor: numpy on the same columns": None if floor_s is None else round(floor_s, 2),
                    "peak RSS MB": None})
    return out


def make_tree(root: Path, files: int) -> None:
    """`files` empty files in FOLDERS class folders, made once."""
    done = root / ".complete"
    if done.exists():
        return
    for i in range(files):
        folder = root / f"class_{i % FOLDERS:04d}"
        if i < FOLDERS:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img_{i:09d}.jpg").touch()
    done.touch()


def previous_manifest(root: Path) -> pd.DataFrame:
    """The manifest a first scan would have written: every file ok, with its size and mtime."""
    from curate.data.scan import list_images

    rows = []
    for i, path in enumerate(list_images(root)):
        st = path.stat()
        rel = path.relative_to(root).as_posix()
        rows.append((i, rel, rel.split("/")[0], 32, 32, st.st_size, "0" * 40, "ok", st.st_mtime_ns))
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    return table.astype({"path": "string", "label": "string", "sha1": "string", "status": "string"})


def rescan_rows(files: int, workdir: Path) -> list[dict]:
    from curate.data.scan import scan_folder

    root = workdir / f"tree_{files}"
    make_tree(root, files)
    previous = previous_manifest(root)

    def never_read(paths):
        if paths:
            raise AssertionError(f"the rescan read {len(paths)} unchanged files")
        return []

    def walk_and_stat():
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                os.stat(os.path.join(dirpath, name))

    (manifest, summary), scan_s, scan_rss = timed(lambda: scan_folder(root, previous, inspect_files=never_read))
    assert len(manifest) == files and summary.added == summary.changed == 0
    _, floor_s, _ = timed(walk_and_stat)
    return [{"rows": files, "step": "rescan of an unchanged tree (scan_folder)", "seconds": round(scan_s, 2),
             "floor: os.walk + os.stat of every file": round(floor_s, 2), "peak RSS MB": round(scan_rss)}]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--files", type=int, default=1_000_000, help="files of the rescan tree (0: no rescan rows)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-manifest-bench"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    filters = filter_rows(args.rows, args.workdir)
    rescans = rescan_rows(args.files, args.workdir) if args.files else []
    facts["load_avg_end"] = load_average()
    print("\n### Manifest, filters and rescans at scale\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(filters))
    if rescans:
        print("\n" + markdown_table(rescans))
    out = args.out / f"manifest_scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "filters": filters, "rescan": rescans}, indent=1,
                                       default=float))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
