"""Calibration: one streamed ONNX Runtime pass, per-tensor histograms, UH and baseline methods -> INT8 scales."""

from .api import calibrate
from .histogram import Histogram
from .methods import METHODS, MethodOptions, compute_range
from .scales import ScalesFile, TensorRange, read_trt_cache, write_trt_cache

__all__ = [
    "METHODS",
    "Histogram",
    "MethodOptions",
    "ScalesFile",
    "TensorRange",
    "calibrate",
    "compute_range",
    "read_trt_cache",
    "write_trt_cache",
]
