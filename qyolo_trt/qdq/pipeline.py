"""The quantize pipeline, composed in one place: the Q/DQ rewrite, then every enabled pass in registry order
(float fallback, low-bit lowering, bias correction, fp16 float parts). `quantize`, `build`, `compare` and the
analysis rows all call ``run``.

This is the one module of ``qyolo_trt.qdq`` that reaches into ``qyolo_trt.analysis`` (lazily): the fallback pass
ranks units by ``analysis.sensitivity`` and measures candidates with ``analysis.probe``, through the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnx

from ..calib.scales import ScalesFile
from ..data.feeds import Feeds
from ..errors import QyoloError
from ..lazy import lazy_import
from ..normalize import normalize
from .config import QuantizeConfig
from .measured import with_measured_ranges
from .passes import PassContext, registered
from .quantize import QuantizeResult, quantize


def run(model: onnx.ModelProto, scales: ScalesFile, config: QuantizeConfig, *, ranking: Any = None) -> QuantizeResult:
    """The QDQ model of ``config`` (its report says what each step did). ``ranking``: a sensitivity ranking of this
    rewrite already measured (``analysis.layer_sensitivity``), reused by the fallback pass instead of measuring again."""
    check_ready(config)
    check_scales(scales, config)
    fp32 = normalize(model)
    scales = with_measured_ranges(fp32, scales, config)
    ctx = PassContext(fp32, scales, config, rewrite=lambda c: quantize(fp32, scales, c),
                      rank=lambda feeds: ranking or _rank(fp32, scales, config, feeds), probe=lambda feeds, outputs: _probe(fp32, feeds, outputs))
    result = quantize(fp32, scales, config)
    for step in registered():
        if step.enabled(config):
            result = step.apply(result, fp32, ctx)
    return result


def check_ready(config: QuantizeConfig) -> None:
    """Refuse, before any calibration, a config whose passes need an optional dependency that is absent (torch)."""
    if config.reconstruct:
        lazy_import("torch", "export", "torch (needed by --reconstruct)")


def check_scales(scales: ScalesFile, config: QuantizeConfig) -> None:
    """The scales must have been calibrated for the config's activation width."""
    have = int(scales.params.get("bits", 8))
    if have != config.act_bits:
        raise QyoloError(f"the scales ({scales.method}) were calibrated for {have} bits, not {config.act_bits}: "
                         f"recalibrate with --bits {config.act_bits}")


def _rank(fp32: onnx.ModelProto, scales: ScalesFile, config: QuantizeConfig, feeds: Sequence[Feeds]) -> Any:
    from ..analysis.sensitivity import layer_sensitivity

    return layer_sensitivity(fp32, scales, feeds, config)


def _probe(fp32: onnx.ModelProto, feeds: Sequence[Feeds], outputs: list[str]) -> Any:
    from ..analysis.probe import OutputProbe

    return OutputProbe(fp32, feeds, outputs)
