"""Vectorised clip searches on a histogram: score every candidate grid at once, from prefix sums."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..histogram import Histogram

COARSE_CANDIDATES = 128  # the first pass scores at most this many candidates (evenly strided) ...
REFINE = 4  # ... the second scores every candidate around the best few of them


class GridScorer:
    """Histogram-weighted squared error of fake-quantising the bin centres on candidate grids, from prefix sums.

    A grid ``offset + step * q`` (q = qmin..qmax) sends each centre to its nearest level (the outer levels also take
    everything beyond them: clipping). The centres are sorted, so level q owns a run of bins between two cuts (the
    midpoints m_q between adjacent levels) and its error is S2 - 2 y S1 + y^2 S0 over prefix sums P0, P1, P2 of n,
    n x, n x^2. Summed by parts over the levels this is
    ``sum n (x - y_top)^2 + 2 step * sum_q (P1[cut_q] - m_q P0[cut_q])``: two gathers per candidate and level.
    """

    def __init__(self, hist: Histogram) -> None:
        x, n = hist.centers(), hist.counts.astype(np.float64)
        self.p0, self.p1 = (np.concatenate([[0.0], np.cumsum(v)]) for v in (n, n * x))
        self.moments = (self.p0[-1], self.p1[-1], float(np.sum(n * x * x)))
        self.width, self.bins = hist.width, hist.bins

    def error(self, offset: np.ndarray, step: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
        """One error per candidate (``offset``/``step``: one entry each)."""
        off, st = offset[:, None], step[:, None]
        mids = off + (np.arange(qmin, qmax, dtype=np.float64) + 0.5)[None, :] * st
        # cut_q = number of centres (j - bins + 0.5) * width below the midpoint m_q
        cuts = np.ceil(mids * (1.0 / self.width) + (self.bins - 0.5))
        np.clip(cuts, 0, 2 * self.bins, out=cuts)
        cuts = cuts.astype(np.intp)
        top = offset + qmax * step
        n0, n1, n2 = self.moments
        return n2 - 2.0 * top * n1 + top * top * n0 + 2.0 * step * (self.p1[cuts] - mids * self.p0[cuts]).sum(axis=1)


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


def upper_candidates(hist: Histogram, top: float, fraction: int = 16) -> np.ndarray:
    """Bin-edge indices k (clip = k * width) from ``top / fraction`` up to the first edge >= ``top``
    (the UH reference code tries bins 128..2048 of a [0, max] histogram: the same 1/16 span)."""
    k_top = max(1, min(hist.bins, int(np.ceil(top / hist.width))))
    return np.arange(max(1, k_top // fraction), k_top + 1)
