"""Peak memory of `curate run` on a folder with huge images, next to the same folder without them.

    python -m bench.huge_images [--normal 150] [--huge 3] [--huge-side 20000] [--big 3] [--big-side 15000]

The folder: `--normal` real photos (Caltech-101, else the bundled CIFAR sample), then, in a second
folder, the same plus `--huge` valid PNGs of `--huge-side`^2 pixels (400 MP at 20,000: above curate's
250 MP limit for formats decoded at full size, so they are refused with a reason), `--big` valid PNGs
of `--big-side`^2 (225 MP at 15,000: decoded at full size, under the shared decode-memory budget) and
one PNG whose header claims 30,000 x 30,000 over a few bytes of data. Each `curate run` (1 epoch of the
default recipe, batch 64) runs in its own process, step by step, and reports its peak RSS after each step
(the first run in a fresh environment also compiles UMAP's numba code, which costs memory once: run the
benchmark twice and take the second). Prints a markdown table
and writes bench/results/huge_images-<timestamp>.json. Goal (issue 14): under 2 GB with the huge images.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.machine import load_average, machine_facts, summary_line
from bench.report import markdown_table
from curate import storage

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"


def big_png(path: Path, side: int, seed: int) -> None:
    """A valid side x side RGB PNG of large flat shapes (a few MB on disk, side^2 x 3 bytes decoded)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = (int(v) for v in rng.integers(0, side // 2, 2))
        draw.rectangle([x0, y0, x0 + side // 3, y0 + side // 4], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    img.save(path, compress_level=1)


def lying_png(path: Path, side: int = 30_000) -> None:
    """A PNG whose header claims side x side pixels over a few bytes of compressed zeros."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                     + chunk(b"IEND", b""))


def build(args) -> tuple[Path, Path]:
    """(normal folder, the same with the huge images); reused when already built with these sizes."""
    source = DATA / "caltech101" if (DATA / "caltech101").is_dir() else REPO / "data" / "cifar10-sample"
    files = sorted(source.glob("*/*.jpg"))
    picked = [files[i] for i in np.random.default_rng(0).permutation(len(files))[:args.normal]]
    normal, huge = args.workdir / "normal", args.workdir / "huge"
    for folder in (normal, huge):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i, f in enumerate(picked):
            shutil.copy(f, folder / f"photo_{i:04d}.jpg")
    for i in range(args.huge):
        big_png(huge / f"huge_{i}.png", args.huge_side, i)
    for i in range(args.big):
        big_png(huge / f"big_{i}.png", args.big_side, 100 + i)
    lying_png(huge / "claims_30000x30000.png")
    return normal, huge


def child(folder: str, workspace: str) -> None:
    """One `curate run` in this process, step by step (curate.pipeline.STEPS); prints the exit code, the
    peak RSS reached by the end of each step and the manifest's statuses."""
    from curate import pipeline
    from curate.cli import build_parser
    from curate.workspace import Workspace

    t = time.perf_counter()
    args = build_parser().parse_args(["run", folder, "-w", workspace, "--epochs", "1", "--batch-size", "64"])
    ws, peaks, code = None, {}, 0
    try:
        for step in pipeline.STEPS:
            ws = step.run(args, ws)
            peaks[step.name] = round(peak_rss_mb())
    except Exception as err:  # the failure is the finding: report it with the peaks so far
        print(f"failed: {type(err).__name__}: {err}", file=sys.stderr)
        code = 1
    statuses = Workspace(workspace).manifest()["status"].astype(str).value_counts().to_dict()
    print("RESULT " + json.dumps({"exit": code, "peak_rss_mb": max(peaks.values(), default=0), "peaks": peaks,
                                  "seconds": time.perf_counter() - t, "statuses": statuses}))


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the parent through
    fork and exec, so a child would report the parent's peak (here: the PNGs built before it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(folder: Path, workspace: Path) -> dict:
    shutil.rmtree(workspace, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "bench.huge_images", "--child", str(folder), str(workspace)],
                          cwd=REPO, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"curate run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:3])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--normal", type=int, default=150)
    p.add_argument("--huge", type=int, default=3)
    p.add_argument("--huge-side", type=int, default=20_000)
    p.add_argument("--big", type=int, default=3)
    p.add_argument("--big-side", type=int, default=15_000)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-huge-bench"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    t = time.perf_counter()
    normal, huge = build(args)
    print(f"built the folders in {time.perf_counter() - t:.0f} s", flush=True)
    rows = []
    for name, folder in (("without the huge images", normal), ("with them", huge)):
        r = measure(folder, args.workdir / f"ws_{folder.name}")
        skipped = {k: v for k, v in r["statuses"].items() if k != "ok"}
        rows.append({"folder": name, "files": sum(r["statuses"].values()), "ok": r["statuses"].get("ok", 0),
                     "skipped (reason: count)": "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "none",
                     "exit": r["exit"], "peak RSS MB": round(r["peak_rss_mb"]),
                     "peak reached in": next(k for k, v in r["peaks"].items() if v == r["peak_rss_mb"]),
                     "RSS after scan / quality / train MB": " / ".join(str(r["peaks"].get(k, "—"))
                                                                       for k in ("scan", "quality", "train")),
                     "seconds": round(r["seconds"], 1)})
        print(markdown_table(rows[-1:]), flush=True)
    facts["load_avg_end"] = load_average()
    print(f"\n### Peak memory of `curate run` with huge images ({args.huge} x {args.huge_side:,}^2 PNG, {args.big} x "
          f"{args.big_side:,}^2 PNG, one lying header, beside {args.normal} photos)\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    out = args.out / f"huge_images-{time.strftime('%Y%m%d-%H%M%S')}.json"
    storage.write_text(out, json.dumps({"machine": facts, "args": {k: str(v) for k, v in vars(args).items()},
                                        "rows": rows}, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
