"""Calibration methods: registry name -> function(histogram, options) -> TensorRange, one module each (``base.py``:
the interface and ``@register``).

Every method reads the same streamed ``Histogram``; degenerate tensors (nothing finite, all zero, constant)
are answered here, once, with a finite positive scale and a warning naming the tensor.
"""

from __future__ import annotations

import importlib

from ...defaults import METHODS as NAMES
from ..histogram import Histogram
from ..scales import TensorRange
from .base import METHODS, Method, MethodOptions

for _name in NAMES:  # module <name>.py registers method <name>, in the order the CLI offers them (defaults.METHODS)
    importlib.import_module(f"{__name__}.{_name}")


def compute_range(method: str, hist: Histogram, options: MethodOptions, name: str = "tensor") -> TensorRange:
    """Run ``method`` on ``hist``; degenerate statistics get a defined scale and a warning instead."""
    problem = _degenerate(hist)
    if problem is None:
        result = METHODS[method](hist, options)
    else:
        clip = hist.absmax if hist.total and hist.absmax > 0 else 1.0
        lo, hi = (hist.min, hist.max) if hist.total else (-clip, clip)
        result = TensorRange(scale=clip / options.qmax, clip=clip, min=lo, max=hi, lower=min(lo, 0.0), upper=max(hi, 0.0))
        result.warning = f"{name}: {problem}"
    if problem is None and hist.nonfinite:
        result.warning = f"{name}: {hist.nonfinite} non-finite value(s) ignored"
    return result


def _degenerate(hist: Histogram) -> str | None:
    if hist.total == 0:
        return "no finite values" if hist.nonfinite else "no values"
    if hist.absmax == 0.0:
        return "all values are zero"
    if hist.min == hist.max:
        return f"constant value {hist.min:g}"
    return None


__all__ = ["METHODS", "Method", "MethodOptions", "compute_range"]
