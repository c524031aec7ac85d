"""Entropy: TensorRT's classic KL-divergence calibration (GTC 2017, S7310), on the magnitude histogram.

For every candidate i = 128 .. bins: the reference P is the first i bins with all outliers added to the last;
the candidate Q merges those i bins into 128 levels (i // 128 bins each, the remainder in the last level) and
spreads each level's count evenly over the bins where P is non-zero. The clip is the edge i * width of the
candidate with the smallest KL(P || Q) (first on ties); Q = 0 where P > 0 makes the divergence infinite.
Computed for all candidates at once from cumulative sums: KL = sum P log P / T - log T + log Tq - sum_g Pg log(Qg / Ng) / T
(T = total count, Tq = count of the first i bins, per level g: Pg its P mass, Qg its count, Ng its non-zero bins).
"""

from __future__ import annotations

import numpy as np

from ..histogram import Histogram
from ..scales import TensorRange
from .base import MethodOptions, register

LEVELS = 128


def _xlogx(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0, v * np.log(np.where(v > 0, v, 1.0)), 0.0)


def kl_divergences(h: np.ndarray, levels: int = LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """(candidates i, KL(P_i || Q_i)) for a magnitude histogram ``h``."""
    h = np.asarray(h, np.float64)
    b = h.size
    levels = min(levels, b)
    i = np.arange(levels, b + 1)
    start = np.arange(levels)[None, :] * (i // levels)[:, None]
    end = start + (i // levels)[:, None]
    end[:, -1] = i
    csum = np.concatenate([[0.0], np.cumsum(h)])
    cnz = np.concatenate([[0], np.cumsum(h > 0)])
    clog = np.concatenate([[0.0], np.cumsum(_xlogx(h))])
    total, kept = csum[-1], csum[i]
    outliers = total - kept
    q_mass = csum[end] - csum[start]
    nonzero = (cnz[end] - cnz[start]).astype(np.float64)
    nonzero[:, -1] += (h[i - 1] == 0) & (outliers > 0)
    p_mass = q_mass.copy()
    p_mass[:, -1] += outliers
    p_log_p = clog[i - 1] + _xlogx(h[i - 1] + outliers)
    with np.errstate(divide="ignore", invalid="ignore"):
        level_log = np.where(p_mass > 0, p_mass * np.log(q_mass / np.where(nonzero > 0, nonzero, 1.0)), 0.0)
        kl = p_log_p / total - np.log(total) + np.log(kept) - level_log.sum(axis=1) / total
    return i, np.where(np.isnan(kl), np.inf, kl)


@register("entropy")
def entropy(hist: Histogram, options: MethodOptions) -> TensorRange:
    candidates, kl = kl_divergences(hist.pos + hist.neg, options.qmax + 1)
    clip = float(min(candidates[int(np.argmin(kl))] * hist.width, hist.absmax))
    return TensorRange(scale=clip / options.qmax, clip=clip, min=hist.min, max=hist.max)
