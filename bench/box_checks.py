"""Annotation checks (curate.quality.box_checks) on real COCO boxes, clean and with planted problems,
and their speed on 1M synthetic boxes.

    python -m bench.box_checks [--data ../shared/data/coco128-detect] [--boxes 1000000] [--images 250000]

The 941 YOLO boxes of coco128-detect (128 COCO photos) are read into curate's box table (pixels of the
image as decoded: the YOLO fractions times the EXIF-upright size). Each planted problem is applied to
every box in its own copy of the table, then measured with the rest of its image as it is:
a duplicate (a copy with each edge moved by up to 3% of the box's side), a relabelled copy (the same,
another class), a shrunk box (5% of its sides, about its centre), a stray click (a 1-3 px box at its
centre), a squashed box (its short side / 10), a box shifted over the nearest border by 30% of its side
and clipped to the image. The table gives, per flag at BoxCheckConfig's threshold, the share of clean
boxes flagged and the share of planted ones; the sweep gives the same at other thresholds.
Speed: box_metrics + box_flags on `--boxes` random boxes over `--images` 640x480 images (Poisson
counts per image, 80 classes). Prints markdown tables and writes bench/results/box_checks-<timestamp>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import markdown_table
from curate.data.images import image_size
from curate.quality.box_checks import BoxCheckConfig, box_flags, box_metrics, image_box_flags

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "coco128-detect"
# flag -> (metric it reads, planted problem meant to raise it, other thresholds to sweep)
FLAGS = {
    "duplicate_box": ("max_iou_same", "duplicate", [0.7, 0.8, 0.85, 0.9, 0.95]),
    "overlapping_classes": ("max_iou_other", "relabelled copy", [0.5, 0.6, 0.7, 0.8, 0.9]),
    "tiny_box": ("min_side_px", "shrunk to 5%", [2, 3, 4, 6]),
    "extreme_aspect_ratio": ("aspect_ratio", "squashed 1/10", [6, 8, 10, 12]),
    "cut_by_border": ("border_gap_px", "shifted over border", [0, 1, 2, 4]),
}


def read_yolo(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(BOX_COLUMNS table, sizes indexed by image path) of a YOLO folder: images/train2017, labels/train2017."""
    names = {}
    for line in (root / "data.yaml").read_text().splitlines():
        key, _, value = line.strip().partition(":")
        if key.isdigit():
            names[int(key)] = value.strip()
    rows, sizes = [], {}
    for img in sorted((root / "images" / "train2017").glob("*.jpg")):
        w, h = image_size(img)
        sizes[str(img)] = (w, h)
        label_file = root / "labels" / "train2017" / f"{img.stem}.txt"
        lines = label_file.read_text().split("\n") if label_file.exists() else []
        for i, line in enumerate(filter(str.strip, lines)):
            c, xc, yc, bw, bh = line.split()
            xc, yc, bw, bh = float(xc) * w, float(yc) * h, float(bw) * w, float(bh) * h
            rows.append((str(img), xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2, names[int(c)],
                         f"{label_file.name}#{i}", False, None))
    boxes = pd.DataFrame(rows, columns=["image", "x0", "y0", "x1", "y1", "label", "annotation", "iscrowd", "problem"])
    return boxes, pd.DataFrame.from_dict(sizes, orient="index", columns=["width", "height"])


def _sides(b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return (b.x1 - b.x0).to_numpy(), (b.y1 - b.y0).to_numpy()


def _rescale(b: pd.DataFrame, w: np.ndarray, h: np.ndarray) -> pd.DataFrame:
    """`b` with each box resized to (w, h) about its centre."""
    out = b.copy()
    cx, cy = (b.x0 + b.x1).to_numpy() / 2, (b.y0 + b.y1).to_numpy() / 2
    out["x0"], out["x1"], out["y0"], out["y1"] = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    return out


def jittered(b: pd.DataFrame, rng, share: float = 0.03) -> pd.DataFrame:
    out = b.copy()
    w, h = _sides(b)
    for col, side in (("x0", w), ("x1", w), ("y0", h), ("y1", h)):
        out[col] = b[col].to_numpy() + rng.uniform(-share, share, len(b)) * side
    return out


def shifted_over_border(b: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """Each box moved towards its nearest border until 30% of its side is outside, then clipped."""
    out = b.copy()
    w, h = _sides(b)
    W, H = (sizes.reindex(b.image)[c].to_numpy(float) for c in ("width", "height"))
    gaps = np.stack([b.x0, b.y0, W - b.x1, H - b.y1], axis=1)
    side = gaps.argmin(axis=1)
    dx = np.select([side == 0, side == 2], [-(b.x0.to_numpy() + 0.3 * w), W - b.x1.to_numpy() + 0.3 * w], 0.0)
    dy = np.select([side == 1, side == 3], [-(b.y0.to_numpy() + 0.3 * h), H - b.y1.to_numpy() + 0.3 * h], 0.0)
    out["x0"], out["x1"] = np.clip(b.x0 + dx, 0, W), np.clip(b.x1 + dx, 0, W)
    out["y0"], out["y1"] = np.clip(b.y0 + dy, 0, H), np.clip(b.y1 + dy, 0, H)
    return out


def planted(boxes: pd.DataFrame, sizes: pd.DataFrame, seed: int = 0) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """problem -> (box table holding it, (N,) bool: its planted rows), each applied to every box."""
    rng = np.random.default_rng(seed)
    n = len(boxes)
    classes = np.array(sorted(boxes.label.unique()))
    w, h = _sides(boxes)
    copy = jittered(boxes, rng)
    relabelled = jittered(boxes, rng)
    shift = rng.integers(1, len(classes), n)  # any class but the box's own
    relabelled["label"] = classes[(np.searchsorted(classes, boxes.label) + shift) % len(classes)]
    click = rng.uniform(1, 3, n)
    in_place = np.ones(n, bool)
    return {
        "duplicate": (pd.concat([boxes, copy], ignore_index=True), np.r_[np.zeros(n, bool), in_place]),
        "relabelled copy": (pd.concat([boxes, relabelled], ignore_index=True), np.r_[np.zeros(n, bool), in_place]),
        "shrunk to 5%": (_rescale(boxes, w * 0.05, h * 0.05), in_place),
        "stray click (1-3 px)": (_rescale(boxes, click, click), in_place),
        "squashed 1/10": (_rescale(boxes, np.where(w <= h, w / 10, w), np.where(h < w, h / 10, h)), in_place),
        "shifted over border": (shifted_over_border(boxes, sizes), in_place),
    }


def quality_rows(boxes: pd.DataFrame, sizes: pd.DataFrame, cfg: BoxCheckConfig) -> tuple[list, list, dict]:
    """(table at cfg's thresholds, threshold sweep, extra facts) on clean and planted boxes."""
    clean = box_metrics(boxes, sizes)
    clean_flags = box_flags(clean, cfg)
    cases = planted(boxes, sizes)
    scored = {name: (box_metrics(b, sizes), rows) for name, (b, rows) in cases.items()}
    table, sweep = [], []
    for flag, (metric, problem, thresholds) in FLAGS.items():
        m, rows = scored[problem]
        row = {"flag": flag, "threshold": getattr(cfg, flag), "metric": metric,
               "clean flagged %": 100 * float(clean_flags[flag].mean()),
               "clean median": float(clean[metric].median()), "planted problem": problem,
               "planted flagged %": 100 * float(box_flags(m, cfg)[flag][rows].mean()),
               "planted median": float(m[metric][rows].median())}
        table.append(row)
        for t in thresholds:
            c = replace(cfg, **{flag: t})
            sweep.append({"flag": flag, "threshold": t,
                          "clean flagged %": 100 * float(box_flags(clean, c)[flag].mean()),
                          "planted flagged %": 100 * float(box_flags(m, c)[flag][rows].mean())})
    m, rows = scored["stray click (1-3 px)"]
    table.append({"flag": "tiny_box", "threshold": cfg.tiny_box, "metric": "min_side_px",
                  "clean flagged %": table[2]["clean flagged %"], "clean median": table[2]["clean median"],
                  "planted problem": "stray click (1-3 px)",
                  "planted flagged %": 100 * float(box_flags(m, cfg)["tiny_box"][rows].mean()),
                  "planted median": float(m["min_side_px"][rows].median())})
    return table, sweep, clean_facts(boxes, clean, sizes, cfg)


def clean_facts(boxes: pd.DataFrame, clean: pd.DataFrame, sizes: pd.DataFrame, cfg: BoxCheckConfig) -> dict:
    """Where the clean boxes sit: top overlaps of other classes, highest same-class IoU, boxes per image."""
    top = clean.nlargest(8, "max_iou_other")
    per_image = image_box_flags(list(sizes.index), boxes, cfg)
    return {
        "top_other_class_overlaps": [f"{boxes.label[i]}/{top.other_label[i]} {top.max_iou_other[i]:.2f}"
                                     for i in top.index],
        "max_iou_same_top": [round(float(v), 3) for v in clean.max_iou_same.nlargest(5)],
        "aspect_ratio_top": [f"{boxes.label[i]} {clean.aspect_ratio[i]:.1f}"
                             for i in clean.aspect_ratio.nlargest(6).index],
        "border_gap_px_%": {f"({lo}, {hi}]": round(100 * float(clean.border_gap_px.between(lo, hi, "right").mean()), 2)
                            for lo, hi in ((-np.inf, 0.01), (0.01, 1), (1, 2), (2, 4))},
        "boxes_per_image": {"median": float(per_image.n_boxes.median()), "max": int(per_image.n_boxes.max()),
                            "p99": float(per_image.n_boxes.quantile(0.99)),
                            "images_flagged_many_%": 100 * float(per_image.many_boxes.mean()),
                            "images_without_boxes": int(per_image.no_boxes.sum())},
    }


def synthetic(n_boxes: int, n_images: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n_boxes` random boxes over `n_images` 640x480 images, 80 classes, Poisson counts per image."""
    rng = np.random.default_rng(seed)
    images = np.array([f"img/{i:07d}.jpg" for i in range(n_images)], dtype=object)
    which = rng.integers(0, n_images, n_boxes)
    x0, y0 = rng.uniform(0, 600, n_boxes), rng.uniform(0, 440, n_boxes)
    w, h = rng.uniform(2, 200, n_boxes), rng.uniform(2, 200, n_boxes)
    boxes = pd.DataFrame({"image": images[which], "x0": x0, "y0": y0, "x1": np.minimum(x0 + w, 640),
                          "y1": np.minimum(y0 + h, 480), "label": rng.integers(0, 80, n_boxes).astype(str),
                          "annotation": None, "iscrowd": False, "problem": None})
    return boxes, pd.DataFrame({"width": 640, "height": 480}, index=images)


def speed_rows(n_boxes: int, n_images: int) -> list[dict]:
    boxes, sizes = synthetic(n_boxes, n_images)
    t = time.perf_counter()
    metrics = box_metrics(boxes, sizes)
    t_metrics = time.perf_counter() - t
    t = time.perf_counter()
    box_flags(metrics)
    t_flags = time.perf_counter() - t
    t = time.perf_counter()
    image_box_flags(list(sizes.index), boxes)
    t_images = time.perf_counter() - t
    counts = boxes.image.value_counts()
    pairs = int((counts * (counts - 1) // 2).sum())
    return [{"boxes": n_boxes, "images": n_images, "box pairs": pairs, "box_metrics s": t_metrics,
             "box_flags s": t_flags, "image_box_flags s": t_images}]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--boxes", type=int, default=1_000_000)
    p.add_argument("--images", type=int, default=250_000)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args(argv)
    from bench.machine import load_average, machine_facts, summary_line  # torch and faiss: only when run

    facts = machine_facts("cpu", REPO)
    cfg = BoxCheckConfig()
    boxes, sizes = read_yolo(args.data)
    table, sweep, facts_clean = quality_rows(boxes, sizes, cfg)
    speed = speed_rows(args.boxes, args.images)
    facts["load_avg_end"] = load_average()
    print(f"\n### Annotation checks on coco128-detect ({len(boxes):,} boxes, {len(sizes)} images)\n")
    print(summary_line(facts) + "\n")
    print(markdown_table(table) + "\n")
    print(markdown_table(sweep) + "\n")
    for key, value in facts_clean.items():
        print(f"- {key}: {value}")
    print("\n" + markdown_table(speed))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"box_checks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": facts, "config": cfg.to_dict(), "boxes": len(boxes), "table": table,
                               "sweep": sweep, "clean": facts_clean, "speed": speed}, indent=1, default=str))
    print(f"\n-> {out}")


if __name__ == "__main__":
    main()
