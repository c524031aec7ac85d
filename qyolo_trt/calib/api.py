"""``calibrate()``: one streamed pass over the images, every requested method from the same statistics."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import onnx

from ..data import list_images
from ..defaults import DEFAULT_PERCENTILE
from ..errors import QyoloError
from ..model import check_finite_weights, inspect_detector, load_onnx, model_hash
from ..normalize import normalize
from .collect import DEFAULT_SAMPLE_STRIDE, collect
from .methods import METHODS, MethodOptions, compute_range
from .scales import ScalesFile

logger = logging.getLogger(__name__)


def _check_options(
    methods: Sequence[str], num_images: int | None, batch: int, bins: int, percentile: float, bits: int = 8, sample_stride: int = 1
) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise QyoloError(f"unknown calibration method(s) {unknown or '(none)'}; choose from {', '.join(METHODS)}")
    if num_images is not None and num_images < 1:
        raise QyoloError(f"--num-images must be >= 1, got {num_images}")
    if batch < 1:
        raise QyoloError(f"--batch must be >= 1, got {batch}")
    if bins < 16:
        raise QyoloError(f"--bins must be >= 16, got {bins}")
    if not 0.0 < percentile <= 100.0:
        raise QyoloError(f"--percentile must be in (0, 100], got {percentile}")
    if not 2 <= bits <= 8:
        raise QyoloError(f"--bits must be in 2..8, got {bits}")
    if sample_stride < 1:
        raise QyoloError(f"--sample must be >= 1, got {sample_stride}")


def calibrate(
    model: str | os.PathLike | onnx.ModelProto,
    images: str | os.PathLike | Sequence[str | os.PathLike],
    methods: Sequence[str] = ("uh",),
    num_images: int | None = None,
    batch: int = 1,
    bins: int = 2048,
    percentile: float = DEFAULT_PERCENTILE,
    progress_desc: str = "calibrate",
    bits: int = 8,
    sample_stride: int = DEFAULT_SAMPLE_STRIDE,
) -> dict[str, ScalesFile]:
    """Calibrate ``model`` on ``images`` (any source ``list_images`` accepts, or a list of paths) in one
    ONNX Runtime pass; returns one ``ScalesFile`` per method, keyed by method name, in the order requested.

    ``batch`` is used only when the model's batch dimension is dynamic (else images run one at a time).
    The number of unreadable images skipped is recorded in each file's ``params["skipped_images"]``.
    ``sample_stride`` s > 1 bins the bulk of each tensor (``|v|`` below a quarter of its histogram range) from every
    s-th value only; tails and min / max stay exact (1: the full histogram, see ``Histogram.update``).
    ``bits`` < 8 searches the clips for a low-bit grid (scale = clip / (2**(bits-1) - 1)), recorded as ``params["bits"]``.
    """
    methods = list(dict.fromkeys(methods))
    _check_options(methods, num_images, batch, bins, percentile, bits, sample_stride)
    proto = normalize(model) if isinstance(model, onnx.ModelProto) else load_onnx(model)
    info = inspect_detector(proto, source=str(model) if not isinstance(model, onnx.ModelProto) else "model")
    check_finite_weights(proto)
    paths = [Path(p) for p in images] if isinstance(images, (list, tuple)) else list_images(images)
    if not paths:
        raise QyoloError("no calibration images given")
    collected = collect(proto, info, paths, batch=batch, bins=bins, limit=num_images, desc=progress_desc, sample_stride=sample_stride)
    options = MethodOptions(percentile=percentile, bits=bits)
    digest = model_hash(proto)
    results: dict[str, ScalesFile] = {}
    for method in methods:
        tensors = {name: compute_range(method, hist, options, name) for name, hist in collected.stats.items()}
        if not results:
            _warn_degenerate([r.warning for r in tensors.values() if r.warning])
        params = {"bins": bins, "batch": collected.batch, "skipped_images": collected.skipped, "sample_stride": sample_stride}
        if method == "percentile":
            params["percentile"] = percentile
        if bits != 8:
            params["bits"] = bits
        results[method] = ScalesFile(digest, method, collected.num_images, tensors, params)
    return results


def _warn_degenerate(warnings: list[str], shown: int = 3) -> None:
    """One warning line for all degenerate tensors (each keeps its own message in the scales file)."""
    if warnings:
        more = f" (+{len(warnings) - shown} more)" if len(warnings) > shown else ""
        logger.warning("warning: %d calibrated tensor(s) are constant, zero or non-finite and got an exact, finite scale "
                       "(often shape or anchor constants of the float head, harmless there): %s%s",
                       len(warnings), "; ".join(warnings[:shown]), more)
