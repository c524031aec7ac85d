"""MSE: the symmetric clip (a bin edge up to the largest magnitude) minimising the two-sided histogram's
squared fake-quantisation error."""

from __future__ import annotations

import numpy as np

from ..histogram import Histogram
from ..scales import TensorRange
from .base import MethodOptions, register
from .search import GridScorer, argmin_search


@register("mse")
def mse(hist: Histogram, options: MethodOptions) -> TensorRange:
    qmax = options.qmax
    grid = GridScorer(hist)
    w = hist.width

    def score(ks: np.ndarray) -> np.ndarray:
        return grid.error(np.zeros(ks.size), ks * w / qmax, -qmax, qmax)

    k_abs = max(1, min(hist.bins, int(np.ceil(hist.absmax / w))))
    clip = argmin_search(score, np.arange(1, k_abs + 1)) * w
    return TensorRange(scale=clip / qmax, clip=clip, min=hist.min, max=hist.max)
