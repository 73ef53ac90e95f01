"""N object items (default 1,000,000) through import, index, map and dedup: seconds and peak memory per stage.

    python -m bench.objects_scale [--n 1000000] [--vectors synthetic|real] [--data /tmp/objects_scale_data]

Data: synthetic boxes over real images. Each 64x64 JPEG is a 2x2 mosaic of four CIFAR-10 training images
(`--cifar`, 50,000 real 32x32 JPEGs in class folders), drawn at random (seeded) so mosaics differ, with a
YOLO label file of four boxes (class = the CIFAR class folder; each box its cell, inset 0-2 px a side),
laid out as ultralytics does: DATA/images/train/*.jpg, DATA/labels/train/*.txt, DATA/data.yaml. N objects
are N/4 mosaics, generated once in a process pool under --data/n{N}-seed{S} and reused when present.

Stages, each timed with the peak resident memory of this process (the high-water mark reset before each,
bench.measure.PeakMemory; the steps' thread pools are inside it):
  import   `curate.steps.scan.scan(DATA, WS, annotations=DATA/data.yaml)`: list, hash and verify the mosaics,
           read every label file, one manifest row per box.
  vectors  synthetic (default): L2-normalised float32 D-d vectors for the object rows only (image rows stay
           zero, so only objects are indexed): class centre + a per-CIFAR-image offset + noise, so the same
           CIFAR image in two mosaics has near-equal vectors as an encoder would give it; written as
           embeddings.npy with its sidecar as `curate embed` writes them. real: `curate.steps.embed.embed`
           with --encoder on every usable item (images and objects), through the decode cache.
  index    `curate.steps.index.build_workspace_index` (the plan, the build, nprobe tuning).
  map      `curate.steps.map.build_projection(ws, "auto")`; the k-NN graph it needs is built first and its
           seconds are reported on their own beside the stage total.
  quality  `curate.steps.quality.quality(ws)`: decodes every item (an object: its parent, cropped) for the
           metrics and the pixel fingerprints dedup needs.
  dedup    `curate.steps.dedup.dedup(ws, kind="object")` on the stored graph and fingerprints.
Prints a markdown table and writes bench/results/objects_scale-<timestamp>.json (with the load average:
the figures are only as quiet as the machine).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.machine import load_average, machine_facts, summary_line
from bench.measure import PeakMemory
from bench.report import markdown_table
from curate import storage

REPO = Path(__file__).resolve().parent.parent
CIFAR = REPO.parent / "shared" / "data" / "cifar10-train"
CELL, PER_MOSAIC, CHUNK = 32, 4, 2_000
_POOL: np.ndarray | None = None  # the CIFAR pixels, inherited by the forked generator processes


def cifar_pixels(cifar: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(50,000, 32, 32, 3) uint8 pixels, (50,000,) class index, class names; decoded once into `cache`."""
    from PIL import Image

    classes = sorted(p.name for p in cifar.iterdir() if p.is_dir())
    if not cache.exists():
        files = [(f, c) for c, name in enumerate(classes) for f in sorted((cifar / name).glob("*.jpg"))]
        pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f, _ in files])
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, pixels=pixels, label=np.array([c for _, c in files]))
    with np.load(cache) as z:
        return z["pixels"], z["label"], classes


def _write_mosaics(job: tuple[Path, int, np.ndarray, np.ndarray, np.ndarray]) -> None:
    from PIL import Image

    root, first, picks, labels, insets = job
    for j, (four, classes, inset) in enumerate(zip(picks, labels, insets)):
        name = f"mosaic_{first + j:07d}"
        canvas = _POOL[four].reshape(2, 2, CELL, CELL, 3).transpose(0, 2, 1, 3, 4).reshape(2 * CELL, 2 * CELL, 3)
        Image.fromarray(np.ascontiguousarray(canvas)).save(root / "images" / "train" / f"{name}.jpg", quality=90)
        lines = []
        for q in range(PER_MOSAIC):  # YOLO: class cx cy w h, normalised; cell q at row q // 2, column q % 2
            x0, y0 = (q % 2) * CELL + inset[q, 0], (q // 2) * CELL + inset[q, 1]
            x1, y1 = (q % 2 + 1) * CELL - inset[q, 2], (q // 2 + 1) * CELL - inset[q, 3]
            side = 2 * CELL
            lines.append(f"{classes[q]} {(x0 + x1) / 2 / side:.6f} {(y0 + y1) / 2 / side:.6f} "
                         f"{(x1 - x0) / side:.6f} {(y1 - y0) / side:.6f}")
        (root / "labels" / "train" / f"{name}.txt").write_text("\n".join(lines) + "\n")


def mosaic_folder(data: Path, n: int, seed: int, cifar: Path, workers: int) -> tuple[Path, np.ndarray, float]:
    """(the dataset folder, (n/4, 4) CIFAR index of every box, seconds spent generating: 0 when reused)."""
    global _POOL
    root = data / f"n{n}-seed{seed}"
    if (root / "complete.json").exists():
        return root, np.load(root / "picks.npy"), 0.0
    start = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    pixels, label, classes = cifar_pixels(cifar, data / "cifar10-train.npz")
    rng = np.random.default_rng(seed)
    mosaics = -(-n // PER_MOSAIC)
    picks = rng.integers(0, len(pixels), (mosaics, PER_MOSAIC))
    insets = rng.integers(0, 3, (mosaics, PER_MOSAIC, 4))
    for sub in ("images/train", "labels/train"):
        (root / sub).mkdir(parents=True)
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nval: images/train\nnames: {classes}\n")
    _POOL = pixels
    jobs = [(root, s, picks[s:s + CHUNK], label[picks[s:s + CHUNK]], insets[s:s + CHUNK])
            for s in range(0, mosaics, CHUNK)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(_write_mosaics, jobs))
    _POOL = None
    np.save(root / "picks.npy", picks)
    np.save(root / "cifar_label.npy", label)  # class of every CIFAR image, so a rerun needs no pixels
    storage.write_json(root / "complete.json", {"objects": mosaics * PER_MOSAIC, "mosaics": mosaics, "seed": seed,
                                                "cifar": str(cifar)})
    return root, picks, time.perf_counter() - start


def synthetic_vectors(ws, picks: np.ndarray, cifar_label: np.ndarray, dim: int, seed: int) -> dict:
    """Object rows of embeddings.npy: unit(class centre + 0.8 x offset of the CIFAR image + 0.15 x noise),
    offsets and noise of norm ~1; image rows zero. Written block by block, sidecar as `curate embed` does."""
    from numpy.lib.format import open_memmap

    from curate.clock import now
    from curate.generations import write_sidecar

    manifest = ws.manifest()
    objects = manifest[(manifest["kind"] == "object").to_numpy() & (manifest["status"] == "ok").to_numpy()]
    key = objects["annotation"].astype(str).str.extract(r"mosaic_(\d+)\.txt#(\d+)$").astype(int).to_numpy()
    source = picks[key[:, 0], key[:, 1] - 1]  # the CIFAR image each box shows
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, dim), dtype=np.float32)
    offsets = rng.standard_normal((len(cifar_label), dim), dtype=np.float32) * (0.8 / np.sqrt(dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ids = objects["id"].to_numpy()
    with storage.atomic_path(ws.embeddings_file) as tmp:
        out = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(manifest), dim))
        for s in range(0, len(ids), 65_536):
            src = source[s:s + 65_536]
            x = centres[cifar_label[src]] + offsets[src]
            x += rng.standard_normal(x.shape, dtype=np.float32) * (0.15 / np.sqrt(dim))
            out[ids[s:s + 65_536]] = x / np.linalg.norm(x, axis=1, keepdims=True)
        out.flush()
        del out
    write_sidecar(ws.embeddings_file, {"model": f"synthetic {dim}-d (bench.objects_scale)", "d": dim,
                                       "n": int(len(manifest)), "embedded": int(len(ids)), "created": now()})
    return {"vectors": int(len(ids)), "d": dim}


def warm_up() -> float:
    """Seconds numba takes to compile UMAP's kernels (once per process): kept out of the map stage, as
    bench.map_scale does."""
    from curate.project.maps import umap_2d

    t = time.perf_counter()
    umap_2d(np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32))
    return time.perf_counter() - t


def stage_clock() -> tuple[dict, callable]:
    """A progress callback that keeps, per reported stage, the seconds from its first report to its last."""
    stages: dict = {}

    def progress(done, total, info):
        name = str(info.get("stage"))
        now = time.perf_counter()
        stages[name] = (stages.get(name, (now,))[0], now)
    return stages, progress


def spans(stages: dict) -> str:
    return ", ".join(f"{k} {last - first:.0f} s" for k, (first, last) in stages.items())


def stage(name: str, fn) -> tuple[dict, object]:
    print(f"  {name} ...", flush=True)
    with PeakMemory() as mem:
        t = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t
    print(f"  {name}: {seconds:.1f} s, peak RSS {mem.rss_mb:.0f} MB", flush=True)
    return {"stage": name, "seconds": round(seconds, 1), "peak RSS MB": round(mem.rss_mb)}, out


def run(args) -> tuple[list[dict], dict]:
    from curate.steps.dedup import dedup
    from curate.steps.graph import knn_graph
    from curate.steps.index import build_workspace_index
    from curate.steps.map import build_projection
    from curate.steps.quality import quality
    from curate.steps.scan import scan

    root, picks, gen_s = mosaic_folder(args.data, args.n, args.seed, args.cifar, args.workers)
    cifar_label = np.load(root / "cifar_label.npy")
    compile_s = warm_up()
    ws_path = args.workspace / f"n{args.n}"
    shutil.rmtree(ws_path, ignore_errors=True)
    rows, info = [], {"data": str(root), "generated_s": round(gen_s, 1), "workspace": str(ws_path),
                      "numba_compile_s": round(compile_s, 1)}

    row, (ws, summary) = stage("import (scan + 4 boxes per mosaic)", lambda: scan(root, ws_path,
                                                                                  annotations=root / "data.yaml"))
    manifest = ws.manifest()
    n_obj = int((manifest["kind"] == "object").sum())
    row["note"] = f"{int((manifest['kind'] == 'image').sum()):,} images, {n_obj:,} object rows"
    rows.append(row)
    if args.vectors == "synthetic":
        row, out = stage(f"vectors (synthetic, {args.dim}-d)",
                         lambda: synthetic_vectors(ws, picks, cifar_label, args.dim, args.seed))
        row["note"] = f"{out['vectors']:,} object vectors written, not embedded"
    else:
        from curate.steps.embed import embed
        row, out = stage("vectors (real: curate embed)", lambda: embed(ws, model=args.encoder))
        row["note"] = f"{int(np.any(out != 0, axis=1).sum()):,} items embedded ({out.shape[1]}-d) by {args.encoder}"
        del out
    rows.append(row)
    row, ix = stage("index", lambda: build_workspace_index(ws))
    row["note"] = f"{ix['factory']}, recall@10 {ix['recall_at_10']:.3f}" + (f", nprobe {ix['nprobe']}"
                                                                             if ix.get("nprobe", 1) > 1 else "")
    rows.append(row)

    def map_stage():
        t = time.perf_counter()
        _, _, _ = knn_graph(ws)
        return time.perf_counter() - t, build_projection(ws, "auto")
    row, (graph_s, xy) = stage("map (k-NN graph + UMAP)", map_stage)
    meta = storage.read_json(ws.sidecar(ws.knn_graph_file))
    row["note"] = (f"k-NN graph ({meta['method']}, k {meta['k']}) {graph_s:.1f} s; "
                   f"{storage.read_json(ws.sidecar(ws.projection_file))['method']} of {int(np.isfinite(xy[:, 0]).sum()):,} points")
    rows.append(row)
    clock, progress = stage_clock()
    row, m = stage("quality (decode every item: metrics + fingerprints)", lambda: quality(ws, progress=progress))
    row["note"] = f"{int(m['entropy'].notna().sum()):,} items measured ({spans(clock)})"
    rows.append(row)
    clock, progress = stage_clock()
    row, dup = stage("dedup (objects)", lambda: dedup(ws, kind="object", progress=progress))
    found = storage.read_json(ws.duplicate_search_file)
    row["note"] = (f"{int(dup['group'].nunique()):,} groups of {len(dup):,} objects, threshold "
                   f"{found['calibration']['threshold']:.3f}; stages: {spans(clock)}")
    info["dedup_calibration"] = found["calibration"]
    rows.append(row)
    info.update({"objects": n_obj, "scan": summary.line() if hasattr(summary, "line") else str(summary)})
    return rows, info


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="object items (N/4 mosaics)")
    p.add_argument("--vectors", choices=["synthetic", "real"], default="synthetic")
    p.add_argument("--encoder", type=Path, default=Path("/tmp/ws_cifar/model/encoder.pt"), help="for --vectors real")
    p.add_argument("--dim", type=int, default=512, help="synthetic vector dimension")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, default=Path("/tmp/objects_scale_data"))
    p.add_argument("--workspace", type=Path, default=Path("/tmp/objects_scale_ws"), help="wiped and rebuilt")
    p.add_argument("--cifar", type=Path, default=CIFAR)
    p.add_argument("--workers", type=int, default=2, help="processes generating the mosaics")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    facts = machine_facts("cpu", REPO)
    rows, info = run(args)
    facts["load_avg_end"] = load_average()
    total = sum(r["seconds"] for r in rows)
    print(f"\n### {info['objects']:,} objects (2x2 CIFAR-10 mosaics, YOLO boxes): import, index, map, dedup "
          f"({args.vectors} vectors)\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(rows))
    print(f"\ntotal {total:.0f} s; data generated in {info['generated_s']} s (0: reused from {info['data']}); "
          f"numba compiled UMAP in {info['numba_compile_s']} s before the stages")
    out = args.out / f"objects_scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    storage.write_text(out, json.dumps({"machine": facts, "n": args.n, "vectors": args.vectors, "dim": args.dim,
                                        "seed": args.seed, **info, "rows": rows}, indent=1, default=float))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
