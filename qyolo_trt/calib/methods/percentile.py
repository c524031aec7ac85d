"""Percentile: clip the magnitude at the given percentile; the asymmetric bounds are the two-sided percentiles."""

from __future__ import annotations

import numpy as np

from ..histogram import Histogram
from ..scales import TensorRange
from .base import MethodOptions, register


def _quantile_edge(counts: np.ndarray, q: float) -> int:
    """Index of the first bin whose cumulative count reaches fraction ``q`` of the total."""
    cdf = np.cumsum(counts)
    return int(np.searchsorted(cdf, q * cdf[-1], side="left"))


@register("percentile")
def percentile(hist: Histogram, options: MethodOptions) -> TensorRange:
    q = options.percentile / 100.0
    w, b = hist.width, hist.bins
    clip = min((_quantile_edge(hist.pos + hist.neg, q) + 1) * w, hist.absmax)
    lower = max((_quantile_edge(hist.counts, 1.0 - q) - b) * w, hist.min)
    upper = min((_quantile_edge(hist.counts, q) + 1 - b) * w, hist.max)
    return TensorRange(scale=clip / options.qmax, clip=clip, min=hist.min, max=hist.max, lower=min(lower, 0.0), upper=max(upper, 0.0))
