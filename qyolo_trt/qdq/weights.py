"""Per-output-channel symmetric weight quantization on a b-bit grid [-qmax, qmax] (int8 by default): the scales (MinMax,
or the clip that minimises each channel's squared error) and the quantized values. The one per-channel quantizer of
the rewrite, the shift fold and the low-bit pass.

The MSE search scores every channel against every candidate clip ratio at once (vectorised, chunked over
ratios to bound memory); ratio 1.0 (MinMax) is always a candidate, so the search never does worse than MinMax.
"""

from __future__ import annotations

import numpy as np

from ..defaults import INT8_MAX, WEIGHT_CLIPS
from ..errors import QyoloError

MIN_SCALE = 1e-8  # all-zero weight channels still get a finite positive scale
MSE_RATIOS = np.linspace(0.3, 1.0, 141)  # clip / max|w|, step 0.005
CHUNK_VALUES = 1 << 22  # candidate x weight values scored per step


def _rows(weight: np.ndarray, axis: int) -> np.ndarray:
    """The weight as [channels, values per channel] (float64)."""
    return np.moveaxis(weight.astype(np.float64), axis, 0).reshape(weight.shape[axis], -1)


def fake_quant_error(rows: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Squared error of symmetric int8 fake quantization: rows [C, K], scales [..., C] -> [..., C]."""
    s = scales[..., None]
    q = np.clip(np.rint(rows / s), -INT8_MAX, INT8_MAX) * s
    return np.square(q - rows).sum(axis=-1)


def mse_scales(rows: np.ndarray, ratios: np.ndarray = MSE_RATIOS) -> np.ndarray:
    """Per-row scale (clip / 127) whose clip ratio in ``ratios`` minimises the row's squared error; ties -> larger clip."""
    amax = np.abs(rows).max(axis=1)
    ratios = np.unique(np.append(ratios, 1.0))[::-1]  # descending: argmin keeps the largest clip on ties
    step = max(1, CHUNK_VALUES // max(rows.size, 1))
    errors = np.concatenate([
        fake_quant_error(rows, np.maximum(ratios[i : i + step, None] * amax / INT8_MAX, MIN_SCALE))
        for i in range(0, ratios.size, step)
    ])
    return np.maximum(ratios[errors.argmin(axis=0)] * amax / INT8_MAX, MIN_SCALE)


def channel_scales(weight: np.ndarray, axis: int, clip: str = "minmax", qmax: int = INT8_MAX) -> np.ndarray:
    """float32 per-channel scales along ``axis`` for ``clip`` in ``WEIGHT_CLIPS`` (the MSE search is int8's)."""
    rows = _rows(weight, axis)
    if clip == "mse":
        return mse_scales(rows).astype(np.float32)
    if clip == "minmax":
        return np.maximum(np.abs(rows).max(axis=1) / qmax, MIN_SCALE).astype(np.float32)
    raise ValueError(f"unknown weight clip {clip!r}; choose from {', '.join(WEIGHT_CLIPS)}")


def quantize_per_channel(weight: np.ndarray, axis: int, clip: str = "minmax", name: str = "weight", bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel quantization on the ``bits`` grid: (int8 values, float32 scales along ``axis``).
    A weight with inf/nan values (e.g. an fp16 overflow in export) is an error naming it, not an inf scale."""
    w = weight.astype(np.float32)
    if not np.isfinite(w).all():
        raise QyoloError(f"weight {name} has {int((~np.isfinite(w)).sum())} non-finite value(s) (inf/nan): the model itself is broken; "
                         "re-export it")
    qmax = 2 ** (bits - 1) - 1
    scale = channel_scales(w, axis, clip, qmax)
    shape = [1] * w.ndim
    shape[axis] = -1
    return np.clip(np.rint(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8), scale
