"""Near-duplicate pairs from two kinds of evidence: pixel fingerprints and embeddings.

    candidates   each image's `k` nearest neighbours by fingerprint code (FAISS inner product on
                 the low-frequency DCT codes) and by embedding (the workspace's k-NN graph): two
                 neighbour lists per image, never an N x N matrix
    pixel        aligned pixel similarity of the pair (curate.quality.alignment): ~1 when one
                 image is the other up to re-encoding, resizing, tone, blur, noise, shift or crop
    embedding    cosine similarity of the embeddings (NaN without embeddings)
    score        the one number the threshold applies to (`combined_score`)

The same search is run against the mirrored fingerprints of the other images: an image against a
mirrored *other* image is certainly not a duplicate (unless flips count, then upside-down mirrors
serve), yet the mirrored corpus has the statistics of real photos, at the same size N. Those
`null` pairs tell the calibration how high non-duplicates score here (curate.quality.calibration).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from curate.index.faiss_index import build_index, ivf_factory, search
from curate.quality.alignment import CERTAIN, pixel_similarity
from curate.quality.fingerprint import THUMB, dct_codes, mirror_codes
from curate.progress import Progress
from curate.quality.scores import knn

PAIR_COLUMNS = ["a", "b", "pixel", "embedding", "score", "null", "weight"]
# A null pair this alike is a real mirrored copy in the corpus, not chance: on CIFAR-10 (20k) and
# Caltech-101 no chance pair reaches it (0.99 is passed by 5 of 103k and 0 of 13k mirrored pairs).
MIRRORED_COPY = 0.99
# The mirrored null undercounts chance look-alikes in collections whose photos share a canonical pose
# (Caltech-101's motorbikes and airliners all face one way; their mirrors then match each other less
# than the originals do). Measured with planted copies (bench.duplicates): on 300 Caltech photos the
# null counted once expected precision 0.955 where 0.87 was measured, counted 3x 0.97 vs 0.99; on
# 2,400 photos 2x gave 0.90 measured, nearly all the rest Caltech's own near-identical photos (burst
# frames, re-coloured catalogue shots), and on 1,820 CIFAR images 2x kept recall at 0.90 where 3x
# dropped it to 0.87. So each null pair counts twice: the expected precision errs low, not high.
NULL_WEIGHT = 2.0
NULL_QUERIES = 20_000  # images whose mirrored neighbours form the null; counts are scaled to all N


@dataclass
class PairConfig:
    """How near duplicates are searched: the edits that count, and how many neighbours to check."""

    crops: bool = False  # also heavier crops (a quarter of the frame cut away and rescaled)
    flips: bool = False  # a left-right mirrored copy counts as a duplicate
    k: int = 5  # neighbours per image in each candidate list (planted copies rank first in both)
    # Embedding weight in the score: pixels decide (they tell a copy from a look-alike photo); a pair
    # whose embeddings also agree gets this share of the pixel score's shortfall back.
    embedding_weight: float = 0.25
    seed: int = 0  # draws the query images of the null pairs (when there are more than NULL_QUERIES)

    def to_dict(self) -> dict:
        return asdict(self)


def combined_score(pixel: np.ndarray, embedding: np.ndarray, weight: float) -> np.ndarray:
    """Pixel similarity, raised towards 1 by `weight` x (embedding similarity) of its shortfall.

    Without embeddings (NaN) the score is the pixel similarity. Monotone in both inputs, in [-1, 1].
    """
    pixel = np.asarray(pixel, np.float32)
    emb = np.clip(np.nan_to_num(np.asarray(embedding, np.float32), nan=0.0), 0.0, 1.0)
    return pixel + weight * emb * (1.0 - pixel)


def candidate_pairs(codes: np.ndarray, embedding_pairs: np.ndarray | None, k: int,
                    mirrored: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) int64 unique row pairs (a < b), each image with its `k` nearest by code and by embedding,
    and (P,) int64 how many of those neighbour lists hold the pair (its weight in the calibration:
    the null is counted the same way, so mutual neighbours weigh alike in both).

    `embedding_pairs` (N*k, 2): the embeddings' k-NN graph as (row, neighbour) pairs (`_knn_pairs`),
    or None. `mirrored` (N, C): also each image's nearest *mirrored* codes (flipped copies).
    """
    found = [_knn_pairs(codes, k)]
    if mirrored is not None:
        found.append(_cross_pairs(codes, mirrored, k))
    if embedding_pairs is not None:
        found.append(embedding_pairs)
    return _unique(np.concatenate(found))


def _unique(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if not len(pairs):
        return pairs.reshape(0, 2), np.zeros(0, np.int64)
    return np.unique(pairs, axis=0, return_counts=True)


def score_pairs(thumbs: np.ndarray, vectors: np.ndarray | None, cfg: PairConfig | None = None,
                progress: Progress | None = None, sides: np.ndarray | None = None,
                neighbours: np.ndarray | None = None) -> pd.DataFrame:
    """The candidate pairs and their null counterparts, scored: a frame of PAIR_COLUMNS.

    `thumbs` (N, T, T, 3) uint8 fingerprint thumbnails and `vectors` (N, D) L2-normalised embeddings
    (or None) are row-aligned, and so is `sides` (each image's shorter side, px; small images are
    compared at 16 px only, see `pixel_similarity`); `a`, `b` are row positions. Rows with `null`
    True are the mirrored pairs the calibration uses; the rest are the real candidates.
    `neighbours` (N, >= k) row positions of each row's nearest by embedding (-1: none), e.g. the
    workspace's k-NN graph; computed from `vectors` when not given.
    """
    cfg = PairConfig() if cfg is None else cfg
    codes = dct_codes(thumbs)
    null_flip = "ud" if cfg.flips else "lr"
    if vectors is None:
        graph = None
    else:  # computed once: real and null pairs use it
        graph = _as_pairs(neighbours[:, :cfg.k]) if neighbours is not None else _knn_pairs(vectors, cfg.k)
    real, real_weight = candidate_pairs(codes, graph, cfg.k, mirror_codes(codes, "lr") if cfg.flips else None)
    pixel = pixel_similarity(thumbs, real, cfg.crops, progress=progress, stage="candidate pairs", sides=sides)
    if cfg.flips:
        unsure = np.flatnonzero(pixel < CERTAIN)  # a pair that already lines up gains nothing mirrored
        pixel[unsure] = np.maximum(pixel[unsure], pixel_similarity(thumbs, real[unsure], cfg.crops, flip="lr",
                                                                   progress=progress, stage="mirrored pairs",
                                                                   sides=sides))
    # The null: the same two neighbour lists, but every partner mirrored (its code, then its pixels).
    # The null needs no more than NULL_QUERIES query images (each against the whole mirrored corpus):
    # the count of chance pairs above a threshold grows with the queries, so it is scaled back up.
    queries = np.sort(np.random.default_rng(cfg.seed).permutation(len(thumbs))[:NULL_QUERIES])
    null = [_cross_pairs(codes, mirror_codes(codes, null_flip), cfg.k, queries)]
    if graph is not None:
        null.append(graph[np.isin(graph[:, 0], queries)])
    null, null_weight = _unique(np.concatenate(null))
    null_weight = null_weight * NULL_WEIGHT * (len(thumbs) / max(len(queries), 1))
    null_pixel = pixel_similarity(thumbs, null, cfg.crops, flip=null_flip, progress=progress, stage="null pairs",
                                  sides=sides)
    if cfg.flips:  # real pairs had two tries (as is, mirrored): so do null pairs (upside down, and rotated)
        unsure = np.flatnonzero(null_pixel < CERTAIN)
        null_pixel[unsure] = np.maximum(null_pixel[unsure], pixel_similarity(
            thumbs, null[unsure], cfg.crops, flip="both", progress=progress, stage="null pairs, rotated", sides=sides))
    if sides is not None:  # small images: their low-frequency codes too (see `small_image_score`)
        pixel = small_image_score(pixel, codes, real, sides, cfg.flips, mirrored_null=None)
        null_pixel = small_image_score(null_pixel, codes, null, sides, cfg.flips, mirrored_null=null_flip)
    frames = []
    for pairs, pix, is_null, weight in ((real, pixel, False, real_weight), (null, null_pixel, True, null_weight)):
        emb = (pair_dots(vectors, vectors, pairs) if vectors is not None and len(pairs)
               else np.full(len(pairs), np.nan, np.float32))
        frames.append(pd.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1], "pixel": pix, "embedding": emb.astype(np.float32),
                                    "score": combined_score(pix, emb, cfg.embedding_weight), "null": is_null,
                                    "weight": weight}))
    return pd.concat(frames, ignore_index=True)[PAIR_COLUMNS]


def small_image_score(pixel: np.ndarray, codes: np.ndarray, pairs: np.ndarray, sides: np.ndarray, flips: bool,
                      mirrored_null: str | None) -> np.ndarray:
    """`pixel`, raised to the DCT-code similarity where a pair holds an image under 2 x THUMB px.

    Such a pair is compared at 16 px in colour (`pixel_similarity`), where heavy JPEG compression
    of a 32 px image (its 8 x 8 blocks a quarter of the frame, its colour smeared) costs up to 0.2 of
    NCC; the low-frequency luma codes, a graded pHash, barely move under it. Measured on 1,500
    CIFAR-10 images with 20 planted copies per edit (pixels only): JPEG quality 20 found 0.35 -> 1.00,
    every standard edit 0.93 -> 0.99 at the calibrated threshold. Photos keep their aligned 32 px
    score: there the codes of look-alike photos raised the null and cost recall.
    `mirrored_null`: None for real pairs (with `flips`, their mirror counts too), else the null's flip.
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    small = (np.asarray(sides)[pairs] < 2 * THUMB).any(1)
    if not small.any():
        return pixel
    if mirrored_null is None:
        tries = [codes] + ([mirror_codes(codes, "lr")] if flips else [])
    else:  # the null's partner is mirrored (and with flips also rotated), as in its pixel score
        tries = [mirror_codes(codes, mirrored_null)] + ([mirror_codes(mirror_codes(codes, "lr"), "ud")] if flips else [])
    best = np.max([pair_dots(codes, other, pairs[small]) for other in tries], axis=0)
    out = np.array(pixel, np.float32, copy=True)
    out[small] = np.maximum(out[small], best)
    return out


def pair_dots(x: np.ndarray, y: np.ndarray, pairs: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """(P,) float32 x[a] . y[b] for each pair (a, b), a chunk of pairs at a time: gathering both sides of
    every pair at once is P x D x 2 floats (at 1M objects 6.8M pairs of 512-d vectors: 28 GB)."""
    out = np.empty(len(pairs), np.float32)
    for start in range(0, len(pairs), chunk):
        a, b = pairs[start:start + chunk, 0], pairs[start:start + chunk, 1]
        out[start:start + chunk] = np.einsum("pd,pd->p", x[a], y[b])
    return out


def _knn_pairs(x: np.ndarray, k: int) -> np.ndarray:
    """(N*k, 2) pairs (row, neighbour) of the k-NN graph of L2-normalised rows (missing neighbours dropped)."""
    if len(x) < 2:
        return np.empty((0, 2), np.int64)
    _, ids = knn(np.ascontiguousarray(x, np.float32), min(k, len(x) - 1))
    return _as_pairs(ids)


def _cross_pairs(codes: np.ndarray, mirrored: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """(N*k, 2) pairs (row, other row) whose mirrored code is among the row's k nearest (self excluded),
    for every row or only `rows`."""
    import faiss

    if len(codes) < 2:
        return np.empty((0, 2), np.int64)
    rows = np.arange(len(codes)) if rows is None else np.asarray(rows, np.int64)
    want = min(k + 1, len(codes))
    x, y = np.ascontiguousarray(codes[rows], np.float32), np.ascontiguousarray(mirrored, np.float32)
    if len(y) <= 200_000:
        _, ids = faiss.knn(x, y, want, metric=faiss.METRIC_INNER_PRODUCT)
    else:  # an IVF index: near-identical codes share a partition, which is all a duplicate search needs
        index, _ = build_index(y, np.arange(len(y)), ivf_factory(len(y)))
        _, ids = search(index, x, want)
    ids = np.where(ids == rows[:, None], -1, ids)  # an image against its own mirror: no pair
    pairs = _as_pairs(ids)
    pairs[:, 0] = rows[pairs[:, 0]]
    return pairs


def _as_pairs(ids: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(len(ids)), ids.shape[1])
    pairs = np.stack([rows, ids.ravel()], axis=1).astype(np.int64)
    return pairs[pairs[:, 1] >= 0]
