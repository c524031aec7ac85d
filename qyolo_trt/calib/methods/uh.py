"""UH (unilateral histogram, Q-YOLO): the lower bound is the observed minimum, the upper clip is searched over
the positive side's bin edges (1/16 of the max up to the max; the symmetric form up to the largest magnitude) to minimise the histogram-weighted squared error.

Three forms, each with its own search, all scored on every bin (the negative mass included):
- symmetric (TensorRT): grid [-u, u], 255 levels -> ``scale``/``clip``;
- asymmetric (the paper; zero-point targets): grid [l, u], 256 levels -> ``lower``/``upper``;
- shifted-symmetric (TensorRT): grid c +- 127 s with c = (l + u) / 2, s = (u - l) / 254 -> ``shift``/``shift_scale``.
"""

from __future__ import annotations

import numpy as np

from ..histogram import Histogram
from ..scales import TensorRange
from .base import MethodOptions, register
from .search import GridScorer, argmin_search, upper_candidates


@register("uh")
def uh(hist: Histogram, options: MethodOptions) -> TensorRange:
    qmax, steps = options.qmax, options.steps
    grid = GridScorer(hist)
    w = hist.width
    lower = min(hist.min, 0.0)
    ks = upper_candidates(hist, max(hist.max, w))
    ks_sym = upper_candidates(hist, hist.absmax)  # = ks unless the negative side is the larger one

    def symmetric(k: np.ndarray) -> np.ndarray:
        return grid.error(np.zeros(k.size), k * w / qmax, -qmax, qmax)

    def asymmetric(k: np.ndarray) -> np.ndarray:
        return grid.error(np.full(k.size, lower), (k * w - lower) / steps, 0, steps)

    def shifted(k: np.ndarray) -> np.ndarray:
        return grid.error((lower + k * w) / 2, (k * w - lower) / (2 * qmax), -qmax, qmax)

    clip = argmin_search(symmetric, ks_sym) * w
    upper = argmin_search(asymmetric, ks) * w
    shift_upper = argmin_search(shifted, ks) * w
    return TensorRange(
        scale=clip / qmax,
        clip=clip,
        min=hist.min,
        max=hist.max,
        lower=lower,
        upper=upper,
        shift=(lower + shift_upper) / 2,
        shift_scale=(shift_upper - lower) / (2 * qmax),
    )
