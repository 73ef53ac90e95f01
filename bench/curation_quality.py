"""Duplicate and image-quality detection on planted problems: curate next to cleanvision.

    python -m bench.curation_quality [--encoder WS/model/encoder.pt | --workspace WS] [--minutes 5]
                                     [--n-clean 3000] [--per-kind 60] [--out bench/results]

Images come from a held-out part of CIFAR-10 train (`holdout_mask` over the training run's ids, as
bench/ssl_quality.py does), so the encoder never trained on them. Two flat folders of anonymous
file names (labels are used for nothing):

- `dups/`: n_clean clean images, plus one planted copy of `per_kind` of them per transformation
  (byte copy, JPEG quality 20, resize 0.5x and back, 2x upscale, 90%-area crop, brightness/contrast,
  slight blur). curate: scan, embed with the encoder, `dedup` at the calibrated threshold.
  cleanvision: exact (pixel md5) and near (equal perceptual hash) duplicate sets. Scored on pairs:
  recall = planted (original, copy) pairs inside one found group; precision = found pairs that
  were planted (natural CIFAR duplicates count as false positives for both).
- `quality/`: the same n_clean clean images plus `per_kind` images per planted problem (dark, bright,
  blurred, greyscale, odd aspect ratio, odd size, low information), made from held-out images
  whose original is not in the folder. curate: `curate.steps.quality` defaults; cleanvision:
  `find_issues` defaults. Clean images that are exactly grey (R = G = B) count as greyscale.

No encoder given: one is trained for --minutes on the non-held-out images (SimCLR defaults).
Prints markdown tables and writes bench/results/curation_quality-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import shutil
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from curate import storage
from curate.data.manifest import ok_mask
from curate.data.split import holdout_mask
from curate.steps.dedup import dedup
from curate.steps.embed import embed
from curate.steps.quality import quality
from curate.steps.scan import scan
from curate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench.curation_quality")


def _jpeg(img: Image.Image, q: int = 95) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return buf.getvalue()


def _crop90(img):
    w, h = img.size
    cw, ch = round(w * 0.9 ** 0.5), round(h * 0.9 ** 0.5)
    return img.crop((w - cw, 0, w, ch))  # 90% of the area, off-centre


def _tone(img):
    return ImageEnhance.Contrast(ImageEnhance.Brightness(img).enhance(1.25)).enhance(0.8)


# near-duplicate transformation -> (original RGB image, original bytes) -> bytes of the copy
DUP_KINDS = {
    "exact copy": lambda img, raw: raw,
    "jpeg q20": lambda img, raw: _jpeg(img, 20),
    "resize 0.5x and back": lambda img, raw: _jpeg(img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR)
                                                 .resize(img.size, Image.Resampling.BILINEAR)),
    "upscale 2x": lambda img, raw: _jpeg(img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC)),
    "crop 90% area": lambda img, raw: _jpeg(_crop90(img)),
    "brightness/contrast": lambda img, raw: _jpeg(_tone(img)),
    "slight blur": lambda img, raw: _jpeg(img.filter(ImageFilter.GaussianBlur(0.6))),
}
# planted quality problem (curate flag) -> (cleanvision issue type, maker: (image, i) -> bytes)
QUALITY_KINDS = {
    "dark": ("dark", lambda img, i: _jpeg(img.point(lambda v: int(v * 0.3)))),
    "bright": ("light", lambda img, i: _jpeg(img.point(lambda v: int(v * 0.3 + 0.7 * 255)))),
    "blurry": ("blurry", lambda img, i: _jpeg(img.filter(ImageFilter.GaussianBlur(1.5)))),
    # half saved as greyscale JPEGs (mode L), half as RGB JPEGs of grey content
    "grayscale": ("grayscale", lambda img, i: _jpeg(img.convert("L") if i % 2 else img.convert("L").convert("RGB"))),
    "odd_aspect_ratio": ("odd_aspect_ratio", lambda img, i: _jpeg(img.resize((img.width * 4, img.height)))),
    "odd_size": ("odd_size", lambda img, i: _jpeg(img.resize((8, 8)) if i % 2 else img.resize((128, 128)))),
    "low_information": ("low_information", lambda img, i: _jpeg(ImageEnhance.Contrast(img).enhance(0.03))),
}


def source_images(args) -> tuple[Path, np.ndarray, Path]:
    """(image root, held-out usable manifest rows, encoder file): trains an encoder if none is given."""
    if args.workspace is not None:
        ws = Workspace(args.workspace).require()
        encoder = ws.encoder_file
    else:
        ws, _ = scan(args.images, args.workdir / "source")
        encoder = args.encoder
    if encoder is None or not Path(encoder).exists():
        from curate.steps.train import train_workspace
        from curate.train import TrainConfig

        log.info("no encoder given: training SimCLR for %.1f min on the non-held-out images", args.minutes)
        train_workspace(ws, TrainConfig(minutes=args.minutes, holdout=0.1, seed=0))
        encoder = ws.encoder_file
    held = storage.read_json(Path(encoder).with_name("config.json")).get("holdout") or {"fraction": 0.0}
    if not held["fraction"]:
        raise ValueError(f"{encoder} was trained on every image (no holdout): pass one trained with --holdout")
    manifest = ws.manifest()
    mask = ok_mask(manifest) & holdout_mask(manifest["id"].to_numpy(), held["fraction"], held["seed"])
    return ws.root, manifest["path"].to_numpy()[mask], Path(encoder)


def build_folders(root: Path, held: np.ndarray, n_clean: int, per_kind: int, out: Path, seed: int) -> dict:
    """Write dups/ and quality/ under `out`; returns the truth: {folder: {file name: (kind, original name)}}."""
    rng = np.random.default_rng(seed)
    need = n_clean + per_kind * len(QUALITY_KINDS)
    if len(held) < need:
        raise ValueError(f"only {len(held)} held-out images, {need} needed: lower --n-clean or --per-kind")
    picked = rng.permutation(held)[:need]
    dup_clean = q_clean = picked[:n_clean]  # the same clean images in both folders (scored separately)
    q_src = picked[n_clean:]
    truth = {"dups": {}, "quality": {}}
    for folder in truth:
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True)
    n_dups = per_kind * len(DUP_KINDS)
    names = iter(rng.permutation(n_clean + n_dups))  # anonymous, shuffled names: no order hints

    def put(folder: str, data: bytes, kind: str, original: str | None) -> str:
        name = f"img_{next(names):06d}.jpg"
        (out / folder / name).write_bytes(data)
        truth[folder][name] = (kind, original)
        return name

    clean_names = [put("dups", (root / rel).read_bytes(), "clean", None) for rel in dup_clean]
    originals = rng.choice(n_clean, n_dups, replace=False).reshape(len(DUP_KINDS), per_kind)
    for (kind, make), rows in zip(DUP_KINDS.items(), originals):
        for r in rows:
            raw = (root / dup_clean[r]).read_bytes()
            put("dups", make(Image.open(io.BytesIO(raw)).convert("RGB"), raw), kind, clean_names[r])
    names = iter(rng.permutation(n_clean + len(q_src)))
    for rel in q_clean:
        raw = (root / rel).read_bytes()
        grey = np.ptp(np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")), axis=2).max() == 0
        put("quality", raw, "grayscale" if grey else "clean", None)
    for (kind, (_, make)), chunk in zip(QUALITY_KINDS.items(), q_src.reshape(len(QUALITY_KINDS), per_kind)):
        for i, rel in enumerate(chunk):
            put("quality", make(Image.open(root / rel).convert("RGB"), i), kind, None)
    return truth


def pairs_of(groups) -> set[frozenset]:
    return {frozenset(p) for g in groups for p in combinations(sorted(g), 2)}


def score_pairs(found: set[frozenset], truth: dict) -> list[dict]:
    """Per transformation: recall of planted pairs, precision of the found pairs that involve its copies."""
    planted = {frozenset((name, orig)): kind for name, (kind, orig) in truth.items() if orig is not None}
    copies = {name: kind for name, (kind, orig) in truth.items() if orig is not None}
    rows = []
    for kind in [*DUP_KINDS, "all"]:
        want = {p for p, k in planted.items() if kind in ("all", k)}
        mine = found if kind == "all" else {p for p in found if any(copies.get(n) == kind for n in p)}
        hit = len(want & found)
        rows.append({"transformation": kind, "planted": len(want), "recall": hit / max(len(want), 1),
                     "found pairs": len(mine), "precision": len(mine & set(planted)) / len(mine) if mine else None})
    return rows


def keeper_rows(found: set[frozenset], keeper: dict, truth: dict) -> list[dict]:
    """Per transformation, over the planted pairs curate found: how often the original is the keeper."""
    rows = []
    for kind in DUP_KINDS:
        kept = [keeper[orig] for name, (k, orig) in truth.items() if k == kind and frozenset((name, orig)) in found]
        rows.append({"transformation": kind, "pairs found": len(kept),
                     "original kept": float(np.mean(kept)) if kept else None})
    return rows


def curate_duplicates(folder: Path, encoder: Path, work: Path, truth: dict) -> tuple[set[frozenset], dict]:
    """curate's groups at the calibrated threshold, plus (for reference) at the threshold that would
    have been best on this data, and keepers once `quality` has measured sharpness."""
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    ws, _ = scan(folder, work)
    embed(ws, model=encoder)
    table = dedup(ws)
    seconds = round(time.perf_counter() - t, 1)
    names = ws.manifest()["path"].to_numpy()

    def pairs(tab) -> set[frozenset]:
        return pairs_of(names[g["id"].to_numpy()] for _, g in tab.groupby("group"))

    planted = {frozenset((n, o)) for n, (_, o) in truth.items() if o is not None}
    best = max(ORACLE_GRID, key=lambda th: _f1(pairs(dedup(ws, th)), planted))
    best_pairs = pairs(dedup(ws, best))
    quality(ws)  # sharpness breaks keeper ties among equally large images
    table = dedup(ws)
    info = storage.read_json(ws.sidecar(ws.duplicates_file))
    keeper = dict(zip(names[table["id"].to_numpy()], table["keeper"]))
    return pairs(table), {"seconds": seconds, "threshold": info["threshold"], "groups": info["groups"],
                          "keeper": keeper, "best threshold": best, "best pairs": best_pairs}


ORACLE_GRID = (0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)


def _f1(found: set, planted: set) -> float:
    hit = len(found & planted)
    return 2 * hit / (len(found) + len(planted)) if found or planted else 0.0


def cleanvision_run(folder: Path, issue_types: dict, jobs: int):
    try:
        from cleanvision import Imagelab
    except ImportError as err:
        raise SystemExit("cleanvision is needed for this benchmark: pip install -r bench/requirements.txt") from err
    lab = Imagelab(data_path=str(folder))
    t = time.perf_counter()
    lab.find_issues(issue_types, n_jobs=jobs, verbose=False)
    return lab, round(time.perf_counter() - t, 1)


def cleanvision_duplicates(folder: Path, jobs: int) -> tuple[set[frozenset], dict]:
    lab, seconds = cleanvision_run(folder, {"exact_duplicates": {}, "near_duplicates": {}}, jobs)
    sets = [[Path(p).name for p in s] for kind in ("exact_duplicates", "near_duplicates") for s in lab.info[kind]["sets"]]
    return pairs_of(sets), {"seconds": seconds, "groups": len(sets)}


def false_positives(truth: dict, ours: dict, theirs: dict) -> list[dict]:
    """Per check: what the wrongly flagged images were (planted kind: count)."""
    rows = []
    for flag, (issue, _) in QUALITY_KINDS.items():
        row = {"check": f"{flag} / {issue}"}
        for who, found in (("curate", ours[flag]), ("cleanvision", theirs[issue])):
            kinds = [truth[n][0] for n in found if truth[n][0] != flag]
            row[who] = ", ".join(f"{k} {kinds.count(k)}" for k in sorted(set(kinds), key=kinds.count, reverse=True)) or "-"
        rows.append(row)
    return rows


def score_quality(truth: dict, ours: dict, theirs: dict) -> list[dict]:
    rows = []
    for flag, (issue, _) in QUALITY_KINDS.items():
        want = {n for n, (kind, _) in truth.items() if kind == flag}
        row = {"check": f"{flag} / {issue}", "positives": len(want)}
        for who, found in (("curate", ours[flag]), ("cleanvision", theirs[issue])):
            tp = len(want & found)
            row[f"{who} P"] = tp / len(found) if found else None
            row[f"{who} R"] = tp / max(len(want), 1)
            row[f"{who} flagged"] = len(found)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    def fmt(v):
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(fmt(r[h]) for h in head) + " |" for r in rows])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", type=Path, help="encoder.pt (config.json beside it) trained with a holdout on --images")
    p.add_argument("--workspace", type=Path, help="a workspace trained on --images (its encoder and manifest are used)")
    p.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-train")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget when no encoder is given")
    p.add_argument("--n-clean", type=int, default=3000)
    p.add_argument("--per-kind", type=int, default=60, help="planted images per transformation / problem")
    p.add_argument("--jobs", type=int, default=2, help="cleanvision worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/curate-quality-bench"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    root, held, encoder = source_images(args)
    truth = build_folders(root, held, args.n_clean, args.per_kind, args.workdir, args.seed)
    log.info("folders built: %d + %d images", len(truth["dups"]), len(truth["quality"]))
    results = {**duplicate_section(args, encoder, truth["dups"]), **quality_section(args, truth["quality"])}
    results["time"] = [{"task": task, "images": len(truth[folder]), "curate s": results.pop(f"{folder} curate s"),
                        "cleanvision s": results.pop(f"{folder} cleanvision s")}
                       for task, folder in (("duplicates", "dups"), ("quality checks", "quality"))]
    info = results["curate duplicates"]
    titles = {"duplicates": f"Near duplicates ({len(truth['dups'])} images; curate's calibrated threshold "
                            f"{info['threshold']:.4f}, best on this data {info['best threshold']})",
              "keepers": "curate's keeper is the original (share of the planted pairs it found)",
              "quality": f"Quality checks ({len(truth['quality'])} images)",
              "false_positives": "False positives of each check, by what the image really was",
              "time": "Time (s; curate's duplicates include scan, decode and embedding)"}
    for key, title in titles.items():
        print(f"\n### {title}\n\n{table(results[key])}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (args.out / f"curation_quality-{stamp}.json").write_text(json.dumps({
        **results, "encoder": str(encoder), "images": str(root), "n_clean": args.n_clean, "per_kind": args.per_kind,
        "seed": args.seed}, indent=2, default=str))


def duplicate_section(args, encoder: Path, truth: dict) -> dict:
    ours, info = curate_duplicates(args.workdir / "dups", encoder, args.workdir / "ws-dups", truth)
    theirs, their_info = cleanvision_duplicates(args.workdir / "dups", args.jobs)
    rows = []
    for a, b, o in zip(score_pairs(ours, truth), score_pairs(theirs, truth), score_pairs(info.pop("best pairs"), truth)):
        rows.append({"transformation": a["transformation"], "planted": a["planted"],
                     "curate R": a["recall"], "cleanvision R": b["recall"], "curate P": a["precision"],
                     "cleanvision P": b["precision"], "curate pairs": a["found pairs"],
                     "cleanvision pairs": b["found pairs"], "curate R (best t)": o["recall"],
                     "curate P (best t)": o["precision"]})
    keepers = keeper_rows(ours, info.pop("keeper"), truth)
    return {"duplicates": rows, "keepers": keepers, "curate duplicates": info, "cleanvision duplicates": their_info,
            "dups curate s": info["seconds"], "dups cleanvision s": their_info["seconds"]}


def quality_section(args, truth: dict) -> dict:
    t = time.perf_counter()
    shutil.rmtree(args.workdir / "ws-quality", ignore_errors=True)
    ws, _ = scan(args.workdir / "quality", args.workdir / "ws-quality")
    manifest = quality(ws)
    seconds = round(time.perf_counter() - t, 1)
    ours = {f: set(manifest.loc[manifest[f].fillna(False).astype(bool), "path"]) for f in QUALITY_KINDS}
    issues = [issue for issue, _ in QUALITY_KINDS.values()]
    lab, their_seconds = cleanvision_run(args.workdir / "quality", {i: {} for i in issues}, args.jobs)
    theirs = {i: {Path(f).name for f in lab.issues.index[lab.issues[f"is_{i}_issue"]]} for i in issues}
    return {"quality": score_quality(truth, ours, theirs), "false_positives": false_positives(truth, ours, theirs),
            "quality curate s": seconds, "quality cleanvision s": their_seconds}


if __name__ == "__main__":
    main()
