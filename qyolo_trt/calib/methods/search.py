"""Vectorised clip searches on a histogram: fake-quantise the bin centres on every candidate grid at once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..histogram import Histogram

COARSE_CANDIDATES = 128  # the first pass scores at most this many candidates (evenly strided) ...
REFINE = 4  # ... the second scores every candidate around the best few of them


def grid_error(x: np.ndarray, n: np.ndarray, offset: np.ndarray, step: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """Histogram-weighted squared error of fake-quantising centres ``x`` (counts ``n``) on each candidate grid
    ``offset + step * clip(round((x - offset) / step), qmin, qmax)``; ``offset``/``step`` have one entry per candidate."""
    off, st = offset[:, None], step[:, None]
    q = np.clip(np.rint((x[None, :] - off) / st), qmin, qmax)
    err = x[None, :] - (off + q * st)
    return (err * err) @ n


def argmin_search(score: Callable[[np.ndarray], np.ndarray], candidates: np.ndarray) -> int:
    """The candidate (from an increasing integer array) with the smallest score: score a strided subset, then every
    candidate within one stride of the ``REFINE`` best of them (the error curves wiggle: one window is not enough)."""
    stride = max(1, -(-candidates.size // COARSE_CANDIDATES))
    coarse = np.arange(0, candidates.size, stride)
    if stride == 1:
        return int(candidates[int(np.argmin(score(candidates)))])
    best = coarse[np.argsort(score(candidates[coarse]), kind="stable")[:REFINE]]
    window = np.unique((best[:, None] + np.arange(-stride + 1, stride)[None, :]).clip(0, candidates.size - 1))
    fine = candidates[window]
    return int(fine[int(np.argmin(score(fine)))])


def nonzero_bins(hist: Histogram) -> tuple[np.ndarray, np.ndarray]:
    """Centres and counts (float64) of the non-empty bins of both sides."""
    keep = np.flatnonzero(hist.counts)
    return hist.centers()[keep], hist.counts[keep].astype(np.float64)


def upper_candidates(hist: Histogram, top: float, fraction: int = 16) -> np.ndarray:
    """Bin-edge indices k (clip = k * width) from ``top / fraction`` up to the first edge >= ``top``
    (the UH reference code tries bins 128..2048 of a [0, max] histogram: the same 1/16 span)."""
    k_top = max(1, min(hist.bins, int(np.ceil(top / hist.width))))
    return np.arange(max(1, k_top // fraction), k_top + 1)
