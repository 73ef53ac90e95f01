"""How many label issues to flag: as many as an estimated precision allows, measured by planted flips.

The score of a label is its out-of-sample probability (`label_issues.self_confidence`; low: likely
wrong). Where to cut that ranking is estimated, as the near-duplicate threshold is
(`calibration.calibrate`), instead of taken from confident learning's count, which on a weak encoder
flags half of a correctly labelled folder (44-49% of the bundled CIFAR-10 sample at 3 minutes of
training):

1. Planted flips: a copy of the labels with `PLANTED_SHARE` of them moved to another class, drawn
   from the classes the given label is confused with (the given-label x predicted-class counts, so a
   cat becomes a dog more often than a ship, as people's mistakes do), and the out-of-sample
   probabilities recomputed on the copy (vectors unchanged). W(t): share of planted flips scoring
   <= t; U(t): share of the unflipped labels scoring <= t, in the same copy.
2. The share of wrong labels, rho: confident learning's estimate (`label_issues.find_label_issues`,
   the count of the calibrated confident joint's off-diagonal). It takes every confident
   disagreement for a wrong label, so it only holds where the encoder mostly agrees with the labels:
   below `AGREEMENT_MIN` the encoder is declared too weak to judge single labels (on the correctly
   labelled bundled sample, at 40% agreement, it reads 49% wrong labels and flags would be estimated
   at 81% precision, all of them wrong: docs/benchmarks.md "trust figures"). A weak encoder and very
   noisy labels cannot be told apart from the labels alone; both stop here.
3. Expected precision of flagging every label scoring <= t:
   min(1, rho W(t) / U(t)): of the labels scoring <= t, rho W(t) are expected to be wrong (the
   unflipped labels are (1 - rho) right ones and rho wrong ones, scoring as planted flips do). The
   cut is the highest t whose precision, and that of every lower t with at least `MIN_PLANTED` flips
   under it, reaches the target; none reaches it: the encoder is too weak to judge single labels,
   and nothing is flagged.

Numpy in, numpy out; labels are ints 0..C-1 (image classes or the class names of boxes alike);
`probabilities` is any function labels (N,) -> out-of-sample probabilities (N, C).

    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 100); y[:6] = 1  # six zeros labelled 1
    >>> p = np.full((300, 3), .01); p[np.arange(300), np.repeat(np.arange(3), 100)] = .98
    >>> flags, info = estimate(y, p, lambda labels: p, seed=0)
    >>> np.flatnonzero(flags).tolist(), info["too_weak"]
    ([0, 1, 2, 3, 4, 5], False)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from curate.quality.label_issues import find_label_issues

TARGET_PRECISION = 0.8  # 4 of 5 flagged labels wrong: a review list worth a person's time (duplicates: 0.95)
PLANTED_SHARE = 0.05  # flips planted in the copy: enough to measure W, few enough to leave the classifier as it was
MIN_PLANTED = 5  # planted flips a threshold must have under it before its precision counts (fewer: noise)
# Agreement (argmax == given label) below which the encoder is too weak to judge single labels: a third
# or more of the labels disagree with it, many times the 3-10% wrong labels curated sets carry (3.4% on
# average over ten benchmark test sets, Northcutt, Athalye, Mueller, NeurIPS 2021; CIFAR-10N's majority
# vote 9%), so most disagreement is the encoder's. The CIFAR-10 encoders of docs/benchmarks.md (37-59%)
# are below it; synthetic clusters at 90-97% with 3-10% planted errors are flagged at precision 1.0.
AGREEMENT_MIN = 0.7
METHOD = "planted label flips; noise rate from confident learning"


def plant_flips(labels: np.ndarray, probs: np.ndarray, share: float = PLANTED_SHARE,
                rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,) with `share` of them flipped, the flipped rows (M,) sorted). A label i moves to
    class j != i with probability proportional to how often images labelled i are predicted j
    (probs.argmax), plus one count each, so every other class stays possible."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(rng)
    c = probs.shape[1]
    counts = np.ones((c, c))
    np.add.at(counts, (labels, probs.argmax(1)), 1)
    np.fill_diagonal(counts, 0)
    move = counts / counts.sum(1, keepdims=True)
    rows = np.sort(rng.choice(len(labels), max(1, int(round(share * len(labels)))), replace=False))
    flipped = labels.copy()
    flipped[rows] = (move[labels[rows]].cumsum(1) > rng.random((len(rows), 1))).argmax(1)
    return flipped, rows


def precision_curve(planted: np.ndarray, unflipped: np.ndarray, noise: float) -> tuple[np.ndarray, ...]:
    """(thresholds (M,), expected precision (M,), planted recall (M,)) at each planted-flip score,
    lowest first: flagging every label scoring <= t is expected to be right min(1, noise W(t) / U(t))
    of the time, W and U the shares of planted and unflipped scores <= t."""
    t = np.sort(np.asarray(planted, np.float64))
    w = np.searchsorted(t, t, side="right") / max(len(t), 1)
    u = np.searchsorted(np.sort(np.asarray(unflipped, np.float64)), t, side="right") / max(len(unflipped), 1)
    hit = noise * w
    return t, np.minimum(1.0, np.divide(hit, u, out=np.where(hit > 0, 1.0, 0.0), where=u > 0)), w


def choose_threshold(precision: np.ndarray, target: float, min_planted: int = MIN_PLANTED) -> int:
    """Index of the highest threshold whose precision, and that of every lower one from the
    `min_planted`-th on, reaches `target`; -1 when none does."""
    ok = np.minimum.accumulate(precision[min_planted - 1:]) >= target
    return int(min_planted - 1 + np.flatnonzero(ok)[-1]) if ok.any() else -1


def estimate(labels: np.ndarray, probs: np.ndarray, probabilities: Callable[[np.ndarray], np.ndarray],
             seed: int = 0, target: float = TARGET_PRECISION, share: float = PLANTED_SHARE,
             agreement_min: float = AGREEMENT_MIN) -> tuple[np.ndarray, dict]:
    """((N,) bool flags, the evidence as a dict): the labels to flag for an expected precision of
    `target`, among those whose most probable class is not the given one.

    labels (N,) int, probs (N, C) their out-of-sample probabilities; `probabilities(flipped)` must
    compute the same probabilities for another labelling of the same items. The dict holds
    threshold, expected_precision (of the flagged set; None when nothing is flagged), best_precision
    (the highest estimate of any cut), target, method, noise_rate, planted, planted_recall (share of
    planted flips under the threshold), planted_auroc (how well the score separates planted flips
    from the other labels: 0.5 chance, 1 perfect), agreement (argmax == label), agreement_min, seed,
    too_weak (agreement below agreement_min, or no cut reaches the target).
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    flipped, rows = plant_flips(labels, probs, share, rng)
    scores2 = probabilities(flipped)[np.arange(len(labels)), flipped]
    planted = np.zeros(len(labels), bool)
    planted[rows] = True
    noise = float(find_label_issues(labels, probs).mean())
    agreement = float(np.mean(probs.argmax(1) == labels))
    t, precision, recall = precision_curve(scores2[planted], scores2[~planted], noise)
    best = choose_threshold(precision, target) if agreement >= agreement_min else -1
    score = probs[np.arange(len(labels)), labels]
    flags = (score <= t[best]) & (probs.argmax(1) != labels) if best >= 0 else np.zeros(len(labels), bool)
    info = {"threshold": float(t[best]) if best >= 0 else None,
            "expected_precision": float(precision[best]) if flags.any() else None,
            "best_precision": float(precision[MIN_PLANTED - 1:].max()) if len(precision) >= MIN_PLANTED else 0.0,
            "target": target, "method": METHOD, "noise_rate": noise,
            "planted": int(len(rows)), "planted_recall": float(recall[best]) if best >= 0 else 0.0,
            "planted_auroc": auroc(scores2[~planted], scores2[planted]),
            "agreement": agreement, "agreement_min": agreement_min, "seed": seed, "too_weak": best < 0}
    return flags, info


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(a positive scores lower than a negative), ties counted half: how well a low score picks
    out the positives (planted flips). 0.5 when either side is empty."""
    if not len(negatives) or not len(positives):
        return 0.5
    neg = np.sort(np.asarray(negatives, np.float64))
    pos = np.asarray(positives, np.float64)
    above = len(neg) - np.searchsorted(neg, pos, side="right")
    ties = np.searchsorted(neg, pos, side="right") - np.searchsorted(neg, pos, side="left")
    return float((above + 0.5 * ties).sum() / (len(neg) * len(pos)))
