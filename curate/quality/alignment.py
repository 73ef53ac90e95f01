"""Aligned pixel similarity: is one thumbnail, up to a crop, shift and rescale, the other one?

For a candidate pair (a, b) of `curate.quality.fingerprint` thumbnails, every window of a from a
fixed grid (a scale per axis, a position per axis) is resampled to `SIDE` x `SIDE` and compared with
the whole of b at that size by normalised cross-correlation (NCC: brightness and contrast drop
out); then the same with the roles swapped. The score is the best NCC, in [-1, 1].

A near duplicate scores ~0.95-1.0: the matching window lines up pixel for pixel, so re-encoding,
resizing, tone changes, blur, sharpening and noise barely move it. Two different photos of the same
scene do not line up, however alike their content, which is what an embedding cannot tell apart.
The window grid is the definition of "near": `LIGHT` covers shifts and crops of up to ~15% of the
area; `CROPS` also windows down to half of each side (heavier crops; 40x the work per pair).

Windows are resampled by exact area averaging (a linear map per axis), so the search is two small
matrix products per window pair, batched over pairs: no per-window Python loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.quality.fingerprint import THUMB
from curate.progress import Progress, report

SIDE = 32  # the fine comparison's side (px), the thumbnail's own; the coarse one is half of it
MIN_STD = 3.0  # grey levels: flatter windows or images carry no pattern to match (NCC undefined)
WORK = 4_000_000  # floats per batch of window crops (16 MB): small enough to stay in cache-friendly memory


@dataclass(frozen=True)
class WindowGrid:
    """Window sizes (fraction of the side, per axis) and the step between window positions."""

    scales: tuple[float, ...]
    step: float  # window positions are this fraction of the side apart (plus both ends)


# Default: crops and shifts of up to 8% of a side (~15% of the area), found within half a
# fine pixel. Light edits all scored >= 0.85 with it; at 16 px (coarse) the same is a 2-window grid.
LIGHT = WindowGrid(scales=(1.0, 0.96, 0.92), step=0.04)
LIGHT_COARSE = WindowGrid(scales=(1.0, 0.92), step=0.08)
CROPS = WindowGrid(scales=(1.0, 0.92, 0.84, 0.76, 0.68, 0.6, 0.52), step=0.08)
CROPS_COARSE = WindowGrid(scales=(1.0, 0.88, 0.76, 0.64, 0.52), step=0.12)
# Pairs below this at 16 px are not refined: every planted light edit scored >= 0.78 there
# (CIFAR-10 and Caltech-101, 30 copies per edit), and the thresholds chosen are above 0.9.
REFINE = 0.8
# ... or, in luma alone, this close: a copy whose colour was washed out (brightening that clips a light
# background to white, then lower contrast) lines up in luma though its chroma no longer correlates.
# bench.duplicates on Caltech-101: such a copy scored 0.79 in colour and 0.99 in luma; of 20,583
# mirrored null pairs none reached 0.98 in luma with colour under REFINE (one reached 0.97).
WASHED_OUT = 0.98
# The last stage, for the few pairs already this close at 32 px: windows 1.5% of a side apart
# (half a pixel at 32 px), scales down to 0.9 of a side. On photos a shift or a light crop
# misses LIGHT's 4% grid by up to 2% of a side, which costs 0.02-0.08 of NCC, enough to fall
# under a threshold near 0.97 (bench.duplicates: translate 5% and crop 90% found 0.55 / 0.55 on
# Caltech-101 with LIGHT alone, 0.90 / 0.95 with this stage after it).
POLISH = 0.85
DENSE = WindowGrid(scales=(1.0, 0.98, 0.96, 0.94, 0.92, 0.9), step=0.015)
# `--crops`: the same dense search down to half of each side, for every pair that reached REFINE.
# On CROPS's 8% grid a 70%-area crop misses its window by up to 4% of a side; this stage lifts
# such a pair from ~0.91 to ~0.97 on Caltech-101 photos, while the null of mirrored pairs stays
# at 0.92 (its 99.9th percentile); on 32 px CIFAR images 70%-area crops rise above every null pair.
# Also the last stage of small images at 16 px (a 4% grid there, 4x cheaper, lost 70%-area crops
# 0.95 -> 0.85 and translate 5% 0.90 -> 0.25 in bench.duplicates on CIFAR).
DENSE_CROPS = WindowGrid(scales=tuple(round(1.0 - 0.02 * i, 2) for i in range(26)), step=0.02)
# A pair this close already lines up: a denser search could only raise its score by what is left below
# 1, which matters only where the calibrated threshold itself lies above this (then within 0.01 of it),
# so it skips the dense stages. Real and null pairs follow the same rule. Copies that
# share their pixels (the same image reused with other context) reach it at the first stage; at 1M
# objects they were nearly every candidate pair and the dense grid was nearly all of dedup's time.
CERTAIN = 0.99


def window_layout(grid: WindowGrid) -> list[tuple[float, float]]:
    """(scale, start) of every window along one axis, both as fractions of the side."""
    layout = []
    for scale in grid.scales:
        slack = 1.0 - scale
        n = 1 if slack < 1e-6 else int(np.ceil(slack / grid.step - 1e-6)) + 1
        layout += [(scale, float(start)) for start in np.linspace(0, slack, n)]
    return layout


def window_matrices(grid: WindowGrid, n_in: int, n_out: int = SIDE) -> np.ndarray:
    """(W, n_out, n_in) float32: row i of matrix w averages the input pixels under output pixel i
    of window w (area weights summing to 1), for every window of `window_layout(grid)`."""
    mats = []
    for scale, start in window_layout(grid):
        edges = (start + scale * np.arange(n_out + 1) / n_out) * n_in  # output pixel borders, input px
        lo, hi = edges[:-1, None], edges[1:, None]
        j = np.arange(n_in)[None, :]
        overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
        mats.append(overlap / overlap.sum(1, keepdims=True))
    return np.stack(mats).astype(np.float32)


def opposite_windows(grid: WindowGrid) -> np.ndarray:
    """(W,) int: for each window, the window of the same scale at the mirrored start. Comparing a
    window of one image with the opposite window of the other finds content shifted between them."""
    layout = window_layout(grid)
    where = {(round(sc, 6), round(st, 6)): i for i, (sc, st) in enumerate(layout)}
    return np.array([where[(round(sc, 6), round(1.0 - sc - st, 6))] for sc, st in layout])


def pixel_similarity(thumbs: np.ndarray, pairs: np.ndarray, crops: bool = False,
                     flip: str | None = None, progress: Progress | None = None, stage: str = "pairs",
                     sides: np.ndarray | None = None) -> np.ndarray:
    """(P,) aligned similarity, coarse to fine: every pair at 16 px on a coarse window grid in colour,
    the pairs that reach `REFINE` there (or `WASHED_OUT` in luma alone) again at 32 px on a fine grid,
    luma only (their score is the fine one: detail tells a copy from a look-alike photo, colour no
    longer needs to), and the pairs that reach `POLISH` then once more on the `DENSE` grid (the
    better of the two; with `crops`, every pair past the 32 px stage, on `DENSE_CROPS`).

    Most candidate pairs are plainly different and stop at the cheap first stage; pairs already at
    `CERTAIN` skip the dense stages (they can only gain what is left below 1). `sides` (N,): each
    image's shorter side in px; a pair with an image under 2 x THUMB px is not compared at 32 px,
    where its thumbnail holds no detail its copies kept (a 32 px image resized to half and back
    is a blur, not a different picture): its last stage is the dense grid at 16 px, in colour.
    """
    coarse, fine, dense = (CROPS_COARSE, CROPS, DENSE_CROPS) if crops else (LIGHT_COARSE, LIGHT, DENSE)
    score, luma_score = aligned_similarity(thumbs, pairs, coarse, flip=flip, side=SIDE // 2, progress=progress,
                                           stage=f"{stage} (16 px)", with_luma=True)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    detailed = np.ones(len(pairs), bool) if sides is None else (np.asarray(sides)[pairs] >= 2 * THUMB).all(1)
    small = np.flatnonzero((score >= REFINE) & (score < CERTAIN) & ~detailed)
    score[small] = np.maximum(score[small], refined_similarity(thumbs, pairs[small], dense, flip=flip, side=SIDE // 2,
                                                               progress=progress, stage=f"{stage} (16 px, dense)"))
    close = np.flatnonzero(((score >= REFINE) | (luma_score >= WASHED_OUT)) & detailed)
    luma = thumbs[..., :1] if thumbs.ndim == 4 else thumbs  # colour has had its say at 16 px: 3x cheaper
    score[close] = aligned_similarity(luma, pairs[close], fine, flip=flip, side=SIDE, progress=progress,
                                      stage=f"{stage} (32 px)")
    closer = close[(score[close] >= (REFINE if crops else POLISH)) & (score[close] < CERTAIN)]
    score[closer] = np.maximum(score[closer], refined_similarity(luma, pairs[closer], dense, flip=flip, side=SIDE,
                                                                 progress=progress, stage=f"{stage} (32 px, dense)"))
    return score


def refined_similarity(thumbs: np.ndarray, pairs: np.ndarray, grid: WindowGrid = DENSE, flip: str | None = None,
                       side: int = SIDE, progress: Progress | None = None, stage: str = "pairs") -> np.ndarray:
    """(P,) NCC after a search on the fine `grid` one axis at a time: the best window along y with x
    whole, then along x with that y, then along y again with that x; for each of the three
    comparisons of `aligned_similarity` (a's window in all of b, all of a in b's window, a's window
    against b's opposite one). 3W windows per comparison instead of W^2: the dense grid at about the
    cost of the coarse one. A crop or a shift moves the content along each axis on its own, so an
    axis's best window barely depends on the other's (measured on Caltech-101: translate 5% and
    90%-area crops found as with every window pair, at a third of the time)."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out = np.full(len(pairs), -1.0, np.float32)
    if not len(pairs):
        return out
    mats = torch.from_numpy(window_matrices(grid, thumbs.shape[1], side))  # (W, S, T); window 0 = whole image
    opp = torch.from_numpy(opposite_windows(grid))
    batch = max(1, WORK // (4 * len(mats) * side * side))
    with torch.inference_mode():
        for start in range(0, len(pairs), batch):
            chunk = pairs[start:start + batch]
            a, b = _channels_first(thumbs[chunk[:, 0]]), _channels_first(thumbs[chunk[:, 1]])
            if flip:
                b = b.flip({"lr": (-1,), "ud": (-2,), "both": (-1, -2)}[flip])
            best = torch.full((len(chunk),), -1.0)
            for role_a, role_b in (("w", "whole"), ("whole", "w"), ("w", "opp")):  # which window each side takes
                at = {"y": torch.zeros(len(chunk), dtype=torch.long), "x": torch.zeros(len(chunk), dtype=torch.long)}
                for axis, other in (("y", "x"), ("x", "y"), ("y", "x")):
                    wa = _axis_windows(a, mats, opp, role_a, axis, at[other])
                    wb = _axis_windows(b, mats, opp, role_b, axis, at[other])
                    ncc = _ncc(wa[:, :, :, None], wb[:, :, :, None])[:, :, 0]  # (P, W)
                    at[axis] = ncc.argmax(1)
                best = torch.maximum(best, ncc.amax(1))  # the last pass scored the chosen (y, x) among its windows
            out[start:start + len(chunk)] = best.numpy()
            report(progress, start + len(chunk), len(pairs), stage=stage, unit="pair")
    return out


def _axis_windows(source: torch.Tensor, mats: torch.Tensor, opp: torch.Tensor, role: str, axis: str,
                  fixed: torch.Tensor) -> torch.Tensor:
    """(P, C, W or 1, S, S) normalised windows of (P, C, T, T) images for one side of a comparison:
    every window along `axis`, the other axis at each pair's `fixed` window. `role` "w" takes the
    windows themselves, "opp" their opposites (both axes), "whole" the whole image (one window)."""
    if role == "whole":
        whole = mats[0].expand(len(source), -1, -1)
        return _normalised(_resample_each(source, whole, whole))[:, :, None]
    order = opp if role == "opp" else torch.arange(len(mats))
    varying, per_pair = mats[order], mats[opp[fixed] if role == "opp" else fixed]  # (W, S, T), (P, S, T)
    if axis == "y":
        cols = torch.einsum("pcyx,pux->pcyu", source, per_pair)
        windows = torch.einsum("wsy,pcyu->pcwsu", varying, cols)
    else:
        rows = torch.einsum("psy,pcyx->pcsx", per_pair, source)
        windows = torch.einsum("pcsx,wux->pcwsu", rows, varying)
    return _normalised(windows)


def _resample_each(source: torch.Tensor, my: torch.Tensor, mx: torch.Tensor) -> torch.Tensor:
    """(P, C, S, S): image p resampled by its own window matrices my[p] (S, T) along y and mx[p] along x."""
    rows = torch.einsum("psy,pcyx->pcsx", my, source)
    return torch.einsum("pcsx,pux->pcsu", rows, mx)


def aligned_similarity(thumbs: np.ndarray, pairs: np.ndarray, grid: WindowGrid = LIGHT,
                       flip: str | None = None, side: int = SIDE, progress: Progress | None = None,
                       stage: str = "pairs", with_luma: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """(P,) float32 best NCC between pairs (P, 2) of rows of (N, T, T, 3) uint8 thumbnails, both ways.

    `flip` "lr" (or "ud", or "both": rotated half a turn): compare the first image with the
    left-right (upside-down) mirror of the second instead: flipped copies, and the calibration's
    null of pairs that are certainly not duplicates. `with_luma`: also (P,) the best NCC of the luma
    channel alone, a by-product of the same windows.
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    out, luma = np.full(len(pairs), -1.0, np.float32), np.full(len(pairs), -1.0, np.float32)
    if not len(pairs):
        return (out, luma) if with_luma else out
    mats = torch.from_numpy(window_matrices(grid, thumbs.shape[1], side))
    opp = torch.from_numpy(opposite_windows(grid))
    batch = max(1, WORK // (6 * len(mats) ** 2 * side * side))
    with torch.inference_mode():
        for start in range(0, len(pairs), batch):
            chunk = pairs[start:start + batch]
            a = _channels_first(thumbs[chunk[:, 0]])
            b = _channels_first(thumbs[chunk[:, 1]])
            if flip:
                b = b.flip({"lr": (-1,), "ud": (-2,), "both": (-1, -2)}[flip])
            wa, wb = _windows(a, mats), _windows(b, mats)  # (P, C, W, W, S, S); window 0: the whole image
            per_channel = [_ncc_channels(wa, wb[:, :, :1, :1]),  # a window of a = all of b
                           _ncc_channels(wb, wa[:, :, :1, :1]),  # all of a = a window of b
                           _ncc_channels(wa, wb[:, :, opp][:, :, :, opp])]  # shifted: a's window, b's opposite
            ncc = torch.stack([_combined(*c) for c in per_channel])
            out[start:start + len(chunk)] = ncc.flatten(2).amax((0, 2)).numpy()
            if with_luma:
                luma_ncc = torch.stack([ch[:, 0] for ch, _ in per_channel])
                luma[start:start + len(chunk)] = luma_ncc.flatten(2).amax((0, 2)).numpy()
            report(progress, start + len(chunk), len(pairs), stage=stage, unit="pair")
    return (out, luma) if with_luma else out


def _channels_first(thumbs: np.ndarray) -> torch.Tensor:
    """(P, C, T, T) float32 from (P, T, T, C) uint8 (or (P, T, T): one channel)."""
    x = torch.from_numpy(np.asarray(thumbs, np.float32))
    return x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)


def _ncc(wa: torch.Tensor, wb: torch.Tensor) -> torch.Tensor:
    """(P, W, W) NCC of normalised windows (P, C, W, W, S, S), luma (channel 0) weighing twice each
    chroma channel; a channel flat in either image (a grey copy) drops out of the average."""
    return _combined(*_ncc_channels(wa, wb))


def _ncc_channels(wa: torch.Tensor, wb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, C, W, W) NCC per channel of normalised windows (P, C, W, W, S, S), and where the channel
    has a pattern in both (a flat channel is all zeros after `_normalised`)."""
    per_channel = (wa * wb).sum((-1, -2))
    both = (wa.square().sum((-1, -2)) > 0.5) & (wb.square().sum((-1, -2)) > 0.5)
    return per_channel, both


def _combined(per_channel: torch.Tensor, both: torch.Tensor) -> torch.Tensor:
    """(P, W, W) the channels' NCC averaged, luma twice the weight of each chroma channel."""
    weight = torch.ones(per_channel.shape[1], dtype=per_channel.dtype)
    weight[0] = 2.0
    w = both.to(per_channel.dtype) * weight[None, :, None, None]
    return (per_channel * w).sum(1) / w.sum(1).clamp_min(1e-6)


def _windows(source: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """(P, C, W, W, S, S) normalised windows (y, x) of (P, C, T, T) images, resampled by (W, S, T) `mats`.

    Two matrix products cover every window: (P*T, T) x (T, W*S) resamples the x axis for all x
    windows at once, then (W*S, T) x (P, T, W*S) the y axis for all y windows.
    """
    shape, side, t = source.shape[:2], mats.shape[1], source.shape[-1]
    n = shape[0] * shape[1]
    stacked = mats.reshape(-1, t)  # (W*S, T)
    cols = (source.reshape(n * t, t) @ stacked.T).reshape(n, t, -1)  # (P*C, T, W*S)
    windows = (stacked @ cols).reshape(*shape, len(mats), side, len(mats), side).transpose(3, 4)
    return _normalised(windows)


def _normalised(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit norm over the last two axes; flat patches (std < MIN_STD) become zero."""
    x = x - x.mean((-1, -2), keepdim=True)
    norm = x.square().sum((-1, -2), keepdim=True).sqrt()
    floor = MIN_STD * (x.shape[-1] * x.shape[-2]) ** 0.5
    return torch.where(norm > floor, x / norm.clamp_min(1e-6), torch.zeros_like(x))
