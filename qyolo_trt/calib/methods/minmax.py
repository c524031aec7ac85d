"""MinMax: the symmetric clip is the largest observed magnitude; the asymmetric bounds are min and max."""

from __future__ import annotations

from ..histogram import Histogram
from ..scales import TensorRange
from .base import MethodOptions, register


@register("minmax")
def minmax(hist: Histogram, options: MethodOptions) -> TensorRange:
    clip = hist.absmax
    return TensorRange(scale=clip / options.qmax, clip=clip, min=hist.min, max=hist.max, lower=min(hist.min, 0.0), upper=max(hist.max, 0.0))
