"""The near-duplicate threshold: chosen for an expected precision, and corrected by a person's marks.

`calibrate` reads two score lists from `curate.quality.pairs`: the real candidate pairs, and the
null pairs (each image against mirrored other images, certainly not duplicates, found the same
way at the same corpus size). Above a threshold t the null count estimates how many of the real
pairs are there by chance, so the expected precision is 1 - null(>= t) / real(>= t). The threshold
is the lowest t at which that estimate, and the estimate at every higher t, reaches the target:
the most pairs found at the precision asked for. No clamp: the chosen t and its expected precision
are reported as measured, and a corpus without duplicates gets a t above every real score.

`threshold_from_marks` replaces that estimate by a person's judgement: pairs marked same or
different near the threshold move it to where the fewest marks disagree with it.
"""
from __future__ import annotations

import numpy as np

TARGET_PRECISION = 0.95


def calibrate(real: np.ndarray, null: np.ndarray, target: float = TARGET_PRECISION,
              real_weight: np.ndarray | None = None, null_weight: np.ndarray | None = None) -> dict:
    """The lowest threshold whose expected precision (and that of every higher one) is >= target.

    Optional weights count a pair more than once (how many neighbour lists found it).
    Returns {"threshold", "expected_precision", "pairs_above", "null_above", "target", "method"}.
    """
    real, real_w = _sorted(real, real_weight)
    null, null_w = _sorted(null, null_weight)
    candidates = np.unique(np.concatenate([real, null]))[::-1]  # high to low
    # weighted counts at or above each candidate threshold, by binary search on the sorted lists
    real_above = _above(real, real_w, candidates)
    null_above = _above(null, null_w, candidates)
    precision = np.where(real_above > 0, 1.0 - null_above / np.maximum(real_above, 1e-9), 1.0).clip(0, 1)
    ok = np.minimum.accumulate(precision) >= target  # every higher threshold also meets the target
    if not len(candidates):
        t = 1.0
    elif ok.all():
        t = float(candidates[-1])
    else:
        first_bad = int(np.argmin(ok))
        # between the last good candidate and the first bad one; above every score if none is good
        t = float(candidates[first_bad - 1]) if first_bad > 0 else float(np.nextafter(candidates[0], np.inf))
    return {"threshold": t, "expected_precision": expected_precision(real, null, t, real_w, null_w),
            "pairs_above": int((real >= t).sum()), "null_above": int((null >= t).sum()), "target": target,
            "method": "mirrored null: each image against mirrored other images, certainly not duplicates"}


def expected_precision(real, null, t: float, real_weight=None, null_weight=None) -> float:
    """1 - (null pairs >= t) / (real pairs >= t), weighted; 1.0 when no real pair reaches t."""
    hits = float(np.sum(np.asarray(real) >= t) if real_weight is None
                 else np.asarray(real_weight, np.float64)[np.asarray(real) >= t].sum())
    chance = float(np.sum(np.asarray(null) >= t) if null_weight is None
                   else np.asarray(null_weight, np.float64)[np.asarray(null) >= t].sum())
    return 1.0 if hits == 0 else max(0.0, 1.0 - chance / hits)


def _sorted(scores, weights) -> tuple[np.ndarray, np.ndarray]:
    """Scores high to low, with their weights (1 each by default) in the same order."""
    scores = np.asarray(scores, np.float64)
    weights = np.ones(len(scores)) if weights is None else np.asarray(weights, np.float64)
    order = np.argsort(-scores, kind="stable")
    return scores[order], weights[order]


def _above(scores: np.ndarray, weights: np.ndarray, thresholds) -> np.ndarray:
    """Total weight of the (descending) `scores` at or above each threshold."""
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    return cum[np.searchsorted(-scores, -np.asarray(thresholds, np.float64), side="right")]


def threshold_from_marks(scores: np.ndarray, same: np.ndarray, prior: float) -> tuple[float, int]:
    """(threshold, marks it gets wrong): the cut between marked pairs with the fewest disagreements.

    `scores` (M,) of marked pairs, `same` (M,) bool (True: a person said duplicate). Cuts are
    tried midway between consecutive marked scores and at `prior` (the calibrated threshold);
    among equally good cuts, the one nearest to `prior` wins, so marks that agree with it keep it.
    """
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    if not len(scores):
        return float(prior), 0
    s = np.unique(scores)
    cuts = np.unique(np.concatenate([[prior], (s[1:] + s[:-1]) / 2, [s[0] - 1e-6, s[-1] + 1e-6]]))
    errors = np.array([int(((scores < c) & same).sum() + ((scores >= c) & ~same).sum()) for c in cuts])
    best = np.flatnonzero(errors == errors.min())
    cut = cuts[best[np.argmin(np.abs(cuts[best] - prior))]]
    return float(cut), int(errors.min())
