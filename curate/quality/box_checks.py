"""Annotation checks: per-box metrics measured once, flags re-derived from thresholds (DESIGN.md section 7).

Input is the box table of `curate.data.items.BOX_COLUMNS` (pixels of the image as decoded); only boxes
with `problem` None are measured, the others get NaN metrics and NA flags (their problem is already said).

| metric | meaning | flag (BoxCheckConfig field) |
|---|---|---|
| `area_ratio` | box area / image area, 0..1 | none: a column to sort and filter by |
| `min_side_px` | the box's shorter side, pixels | `tiny_box` |
| `aspect_ratio` | long side / short side (>= 1; inf for a zero-width box) | `extreme_aspect_ratio` |
| `border_gap_px` | to the nearest image border, px: > 0 inside, 0 touching, < 0 crossing | `cut_by_border` |
| `max_iou_same`, `same_partner` | highest IoU with another box of its class in its image; that box | `duplicate_box` |
| `max_iou_other`, `other_partner`, `other_label` | the same, other classes; and its class | `overlapping_classes` |

Partners are index labels of `boxes` (NA when the box has none: IoU 0). Crowd boxes (`iscrowd` true, COCO's
regions over a crowd of people) are measured but never paired: they are meant to overlap the people in them.

IoUs are computed per image over all pairs of its boxes at once, as flat numpy arrays built without a Python
loop over images or pairs (`pairs_within`), in chunks of at most `PAIR_CHUNK` pairs: 1M boxes over 250k images
take 3-6 s on a shared, busy 2-core CPU (bench/box_checks.py, docs/benchmarks.md).

`box_flags(metrics, cfg)` is pure and cheap, so the app can move thresholds without re-measuring.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curate.quality.checks import Thresholds

PAIR_CHUNK = 2_000_000  # pairs per numpy batch: ~100 MB of temporaries, whatever the number of boxes
METRIC_COLUMNS = ("area_ratio", "min_side_px", "aspect_ratio", "border_gap_px", "max_iou_same", "same_partner",
                  "max_iou_other", "other_partner", "other_label")
FLAG_COLUMNS = ("duplicate_box", "overlapping_classes", "tiny_box", "extreme_aspect_ratio", "cut_by_border")
IMAGE_FLAG_COLUMNS = ("n_boxes", "no_boxes", "many_boxes")


@dataclass
class BoxCheckConfig(Thresholds):
    """Thresholds of every flag. Chosen on real annotations: the 929 boxes of coco128-detect whose image
    is there (126 COCO photos with boxes, 2 without; ../shared/data), clean and with planted problems, each
    applied to every box (`python -m bench.box_checks`, docs/benchmarks.md); each comment gives the share
    of clean boxes flagged and what a planted problem scores."""

    # max_iou_same at or above: the same object boxed twice. Clean: 0.0% (highest 0.87: two snowboards
    # side by side in a rack; 0.2% at 0.8); a copy with each edge moved by up to 3% of the box's side:
    # median 0.943, 99.7% flagged (32% at 0.95).
    duplicate_box: float = 0.9
    # max_iou_other at or above: a box of another class over nearly the same region. Clean: 0.65%, three
    # pairs: a woman in an armchair (person/chair 0.92), one seat boxed as both bench and chair (0.89: a
    # real double label), a pizza filling its table (0.85). A flag to review, not an error: legitimate
    # overlap (a person on a horse) is rarely this tight. 1.3% at 0.7 (truck/car 0.75, person/couch 0.71).
    # A relabelled copy jittered as above: median 0.941, 100% flagged.
    overlapping_classes: float = 0.8
    # min_side_px below. Clean: 0.32% (a distant knife, ball and traffic light, 1.2-1.9 px; the next box
    # is 3.9 px, and COCO boxes many small things: 4.6% are under 6 px). A box shrunk to 5% of its sides
    # about its centre: median 2.0 px, 60% flagged (large boxes stay above: that is a size, not a
    # mistake); a stray click (1-3 px box): 100%.
    tiny_box: float = 3.0
    # aspect_ratio above. Clean: 0.54% (books on a shelf, a bowl seen edge-on: 10.3-13.5; 1.3% at 8).
    # A box squashed to 1/10 of its short side (10 or more by construction): median 16.7, 100% flagged.
    extreme_aspect_ratio: float = 10.0
    # border_gap_px at or below: the box touches or crosses the border, the object is cut by the frame
    # and its crop is partial: a property to filter by, not an error. Clean: 15.5% (12.3% touch exactly,
    # 3.2% stop within 1 px of the edge, where annotators' polygon clicks land; beyond 1 px the gaps rise
    # smoothly, 19.4% within 4 px). A box shifted 30% of its side over the border, clipped: 0 px, 100%.
    cut_by_border: float = 1.0
    # n_boxes above (per image). Clean: none (median 4, max 42); COCO's evaluation keeps at most 100
    # detections per image. An image with more is a crowd scene or an annotation gone wrong.
    many_boxes: int = 50
    what = "box check thresholds"  # a class attribute (no annotation): not a field


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of (N, 4) boxes `a` and `b` as x0, y0, x1, y1: (N,) float64, 0 where both are empty.

    >>> float(iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]]))[0])  # 2 / (4 + 4 - 2)
    0.3333333333333333
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def pairs_within(groups: np.ndarray, chunk: int = PAIR_CHUNK):
    """Every unordered pair of positions sharing a group, for (N,) group codes sorted ascending.

    Yields (first, second) int64 arrays, first < second, at most ~`chunk` pairs at a time (more only
    when one box alone has more partners). Position i of a group of n, at place k in it, pairs with the
    n-1-k positions after it, so the pairs are a repeat and a ramp: no loop over groups or pairs.
    """
    n = len(groups)
    if n < 2:
        return
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    sizes = np.diff(np.r_[starts, n])
    start_of = np.repeat(starts, sizes)
    later = (start_of + np.repeat(sizes, sizes)) - np.arange(n) - 1  # partners after each position
    ends = np.cumsum(later)
    bounds = np.unique(np.r_[0, np.searchsorted(ends, np.arange(chunk, ends[-1], chunk), side="right"), n])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        counts = later[lo:hi]
        total = int(counts.sum())
        if total == 0:
            continue
        first = np.repeat(np.arange(lo, hi), counts)
        ramp = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        yield first, first + 1 + ramp


def keep_best(best: np.ndarray, partner: np.ndarray, first: np.ndarray, second: np.ndarray,
              score: np.ndarray) -> None:
    """Raise (n,) `best` scores and their (n,) `partner` positions in place with pairs (first, second, score).

    A pair counts for both its boxes; scores of 0 (boxes that do not overlap) never make a partner.
    """
    keep = score > 0
    box = np.r_[first[keep], second[keep]]
    other = np.r_[second[keep], first[keep]]
    value = np.r_[score[keep], score[keep]]
    order = np.lexsort((value, box))  # by box, then score: the last of each box is its best
    box, other, value = box[order], other[order], value[order]
    last = np.r_[box[1:] != box[:-1], True] if len(box) else np.zeros(0, bool)
    box, other, value = box[last], other[last], value[last]
    better = value > best[box]
    best[box[better]] = value[better]
    partner[box[better]] = other[better]


def overlap_metrics(coords: np.ndarray, images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Highest IoU with a box of the same / another label in the same image, and which box (-1: none).

    coords: (N, 4) x0, y0, x1, y1; images, labels: (N,) integer codes. Returns (N,) arrays max_iou_same,
    same_partner, max_iou_other, other_partner (partners are positions into the inputs; IoU 0 without one).
    """
    n = len(coords)
    out = {"max_iou_same": np.zeros(n), "same_partner": np.full(n, -1, np.int64),
           "max_iou_other": np.zeros(n), "other_partner": np.full(n, -1, np.int64)}
    order = np.argsort(images, kind="stable")
    for first, second in pairs_within(images[order]):
        a, b = order[first], order[second]
        score = iou(coords[a], coords[b])
        same = labels[a] == labels[b]
        keep_best(out["max_iou_same"], out["same_partner"], a[same], b[same], score[same])
        keep_best(out["max_iou_other"], out["other_partner"], a[~same], b[~same], score[~same])
    return out


def shape_metrics(coords: np.ndarray, width: np.ndarray, height: np.ndarray) -> dict[str, np.ndarray]:
    """area_ratio, min_side_px, aspect_ratio, border_gap_px of (N, 4) boxes in images of (N,) sizes
    (NaN where the size is unknown, for the figures that need it)."""
    x0, y0, x1, y1 = np.asarray(coords, np.float64).T
    w, h = x1 - x0, y1 - y0
    short, long = np.minimum(w, h), np.maximum(w, h)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(long > 0, long / short, np.nan)
        area_ratio = w * h / (width * height)
    gap = np.minimum.reduce([x0, y0, width - x1, height - y1])
    return {"area_ratio": area_ratio, "min_side_px": short, "aspect_ratio": aspect, "border_gap_px": gap}


def box_metrics(boxes: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """METRIC_COLUMNS for every box of a BOX_COLUMNS table, same index; NaN / NA where `problem` is set.

    sizes: `width` and `height` (pixels as decoded) indexed by image path, or with a `path` column (a
    manifest). A box of an image missing from `sizes` gets NaN for area_ratio and border_gap_px.
    """
    sizes = sizes.set_index("path") if "path" in sizes.columns else sizes
    rows = np.flatnonzero(boxes["problem"].isna().to_numpy()) if "problem" in boxes.columns \
        else np.arange(len(boxes))
    b = boxes.iloc[rows]
    coords = b[["x0", "y0", "x1", "y1"]].to_numpy(np.float64)
    images, names = pd.factorize(b["image"])  # look each image up once, not once per box
    dims = sizes[["width", "height"]].astype(np.float64).reindex(names).to_numpy().reshape(-1, 2)[images]
    measured = {**shape_metrics(coords, dims[:, 0], dims[:, 1]), **_overlaps(b, coords, images)}

    out = {}
    for name in ("area_ratio", "min_side_px", "aspect_ratio", "border_gap_px", "max_iou_same", "max_iou_other"):
        out[name] = np.full(len(boxes), np.nan)
        out[name][rows] = measured[name]
    labels = boxes["label"].astype(object).to_numpy()
    for kind in ("same", "other"):
        found = measured[f"{kind}_partner"]
        partner = np.full(len(boxes), -1, np.int64)  # positions into `boxes`
        partner[rows] = np.where(found >= 0, rows[found], -1)
        out[f"{kind}_partner"] = _index_labels(boxes.index, partner)
    out["other_label"] = pd.array(labels[np.maximum(partner, 0)] if len(labels) else [], dtype="string")
    out["other_label"][partner < 0] = pd.NA
    return pd.DataFrame(out, index=boxes.index)[list(METRIC_COLUMNS)]


def _overlaps(boxes: pd.DataFrame, coords: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
    """overlap_metrics of usable `boxes` with (N,) image codes (partners as positions into them), crowd
    boxes left unpaired."""
    crowd = boxes["iscrowd"].astype("boolean").fillna(False).to_numpy(bool) if "iscrowd" in boxes.columns \
        else np.zeros(len(boxes), bool)
    pairable = np.flatnonzero(~crowd)
    labels = pd.factorize(boxes["label"].iloc[pairable], use_na_sentinel=False)[0]  # NA: a class of its own
    found = overlap_metrics(coords[pairable], images[pairable], labels)
    out = {}
    for kind in ("same", "other"):
        out[f"max_iou_{kind}"] = np.zeros(len(boxes))
        out[f"max_iou_{kind}"][pairable] = found[f"max_iou_{kind}"]
        partner = np.full(len(boxes), -1, np.int64)
        partner[pairable] = np.where(found[f"{kind}_partner"] >= 0, pairable[found[f"{kind}_partner"]], -1)
        out[f"{kind}_partner"] = partner
    return out


def _index_labels(index: pd.Index, positions: np.ndarray):
    """Index labels at `positions` (-1: none): nullable Int64 for an integer index, else object with None."""
    found = positions >= 0
    values = index.to_numpy()[np.where(found, positions, 0)] if len(index) else np.zeros(0, np.int64)
    if pd.api.types.is_integer_dtype(index):
        return pd.arrays.IntegerArray(np.where(found, values, 0).astype(np.int64), ~found)
    return pd.array(np.where(found, values.astype(object), None), dtype=object)


def box_flags(metrics: pd.DataFrame, cfg: BoxCheckConfig | None = None) -> pd.DataFrame:
    """The FLAG_COLUMNS (nullable boolean, NA for unmeasured boxes) of a frame holding METRIC_COLUMNS.

    Pure and vectorised: re-run it with other thresholds at no cost. Same index as `metrics`.
    """
    cfg = BoxCheckConfig() if cfg is None else cfg
    m = metrics
    tests = {
        "duplicate_box": (m["max_iou_same"], lambda v: v >= cfg.duplicate_box),
        "overlapping_classes": (m["max_iou_other"], lambda v: v >= cfg.overlapping_classes),
        "tiny_box": (m["min_side_px"], lambda v: v < cfg.tiny_box),
        "extreme_aspect_ratio": (m["aspect_ratio"], lambda v: v > cfg.extreme_aspect_ratio),
        "cut_by_border": (m["border_gap_px"], lambda v: v <= cfg.cut_by_border),
    }
    out = {}
    for name, (values, test) in tests.items():
        v = values.to_numpy(np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            out[name] = pd.array(np.where(np.isnan(v), None, test(v)), dtype="boolean")
    return pd.DataFrame(out, index=metrics.index)


def image_box_flags(images, boxes: pd.DataFrame, cfg: BoxCheckConfig | None = None) -> pd.DataFrame:
    """Per image of an annotated set: `n_boxes` (usable boxes), `no_boxes`, `many_boxes`; index `images`.

    An image whose every box has a problem counts as having none: nothing usable was annotated on it.
    Boxes of images not in `images` are ignored.
    """
    cfg = BoxCheckConfig() if cfg is None else cfg
    usable = boxes["problem"].isna() if "problem" in boxes.columns else pd.Series(True, index=boxes.index)
    counts = boxes.loc[usable.to_numpy(), "image"].value_counts()
    n = counts.reindex(pd.Index(list(images), dtype=object), fill_value=0).astype(np.int64)
    return pd.DataFrame({"n_boxes": n.to_numpy(), "no_boxes": n.to_numpy() == 0,
                         "many_boxes": n.to_numpy() > cfg.many_boxes}, index=n.index)
