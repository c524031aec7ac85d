"""Ranges of tensors a target quantizes that the calibration pass does not collect: ONNX Runtime's QLinearConv needs
the conv output before its SiLU quantized, and QLinearMul the SiLU's sigmoid output. They are measured when
quantizing, in one ONNX Runtime pass over the images bias correction uses (``--images``, else the embedded
calib_data/; ``--bias-num-images``): a sigmoid output by its min / max, a SiLU input by the uint8 bounds that
minimise the error of ``silu(x)`` (not of ``x``: clipping very negative values costs little after the SiLU)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import onnx

from ..backends.ort.session import make_session
from ..calib.histogram import Histogram, Scratch
from ..calib.methods import MethodOptions, compute_range
from ..calib.scales import QMAX, ScalesFile, TensorRange
from ..defaults import default_calib
from ..data.feeds import Feeds, load_feeds
from ..model import copy_model
from .config import QuantizeConfig
from .quantize import uncalibrated

CANDIDATES = 32  # bounds tried per side


def _silu(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """silu(x) and its derivative."""
    s = 0.5 * (1.0 + np.tanh(0.5 * x))
    return x * s, s * (1.0 + x * (1.0 - s))


def silu_input_range(hist: Histogram, levels: int = 255) -> TensorRange:
    """uint8 bounds [lo, hi] of a SiLU's input minimising the histogram-weighted squared error of silu(x): rounding
    noise silu'(x)^2 step^2 / 12 inside the bounds, (silu(x) - silu(clip(x)))^2 outside (every candidate pair at once)."""
    used = hist.counts > 0
    x, n = hist.centers()[used], hist.counts[used].astype(np.float64)
    y, dy = _silu(x)
    lo = np.linspace(min(hist.min, 0.0), 0.0, CANDIDATES, endpoint=False)[:, None, None]
    hi = np.linspace(max(hist.max, hist.width), 0.0, CANDIDATES, endpoint=False)[None, :, None]
    step = (hi - lo) / levels
    inside = n * dy**2 * step**2 / 12
    outside = n * (y - _silu(np.clip(x, lo, hi))[0]) ** 2
    err = np.where((x >= lo) & (x <= hi), inside, outside).sum(axis=-1)
    i, j = np.unravel_index(np.argmin(err), err.shape)
    lower, upper = float(lo[i, 0, 0]), float(hi[0, j, 0])
    clip = max(-lower, upper)
    return TensorRange(scale=clip / QMAX, clip=clip, min=hist.min, max=hist.max, lower=lower, upper=upper)


def measure_ranges(model: onnx.ModelProto, feeds: Sequence[Feeds], names: Sequence[str]) -> dict[str, TensorRange]:
    """The range of each tensor in ``names`` (a Sigmoid output: min / max; else a SiLU input) over ``feeds``."""
    probe = copy_model(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    session = make_session(probe.SerializeToString())
    hists, scratch = {n: Histogram() for n in names}, Scratch()
    for feed in feeds:
        for name, values in zip(names, session.run(list(names), feed)):
            hists[name].update(values, scratch)
    sigmoid_outputs = {o for node in model.graph.node if node.op_type == "Sigmoid" for o in node.output}
    return {n: compute_range("minmax", h, MethodOptions(), n) if n in sigmoid_outputs else silu_input_range(h) for n, h in hists.items()}


def with_measured_ranges(fp32: onnx.ModelProto, scales: ScalesFile, config: QuantizeConfig) -> ScalesFile:
    """``scales`` plus the measured ranges of the tensors ``config``'s target quantizes and ``scales`` lacks."""
    names = uncalibrated(fp32, scales, config)
    if not names:
        return scales
    feeds = load_feeds(fp32, config.bias_images or default_calib(), config.bias_num_images)
    return replace(scales, tensors={**scales.tensors, **measure_ranges(fp32, feeds, names)})
