"""One quantization run as data: the QDQ rewrite's options plus the steps around it (float fallback, bias
correction, low-bit lowering), checked up front and applied in order. Used by `quantize` and `build`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import onnx

from .calib.scales import ScalesFile
from .defaults import default_calib
from .errors import QyoloError
from .normalize import normalize
from .qdq import quantize
from .qdq.bias_correction import BIAS_IMAGES, correct_on_images
from .qdq.quantize import QuantizeResult, store_report

ImageSource = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass(frozen=True)
class Recipe:
    """How to turn an FP32 model and its scales into a QDQ model."""

    mode: str = "shifted"
    weight_clip: str = "minmax"
    exclude: tuple[str, ...] = ()
    keep_float: tuple[str, ...] = ("head",)
    allow_missing: bool = False
    check_hash: bool = True
    fallback_k: int | None = None  # keep the K most sensitive units float ...
    fallback_db: float | None = None  # ... or the fewest that reach this head SQNR (dB)
    fallback_images: ImageSource | None = None  # None: the embedded calib_data/
    fallback_num_images: int = 8
    bias_correction: bool = False
    bias_images: ImageSource | None = None  # None: the embedded calib_data/
    bias_num_images: int = BIAS_IMAGES
    bits: int = 8
    float_dtype: str = "fp32"  # "fp16": every non-INT8 part in half precision (GPU targets; qyolo_trt.qdq.float16)
    io_dtype: str = "fp32"  # graph inputs / outputs of an fp16 model

    def with_images(self, images: ImageSource) -> Recipe:
        """This recipe with ``images`` for the passes that need images and were given none."""
        return replace(self, fallback_images=self.fallback_images or images, bias_images=self.bias_images or images)

    @property
    def fallback(self) -> bool:
        return self.fallback_k is not None or self.fallback_db is not None

    def check(self) -> None:
        """Refuse option combinations that do not compose, before any work is done."""
        if self.fallback_k is not None and self.fallback_db is not None:
            raise QyoloError("give at most one of --auto-fallback, --fallback-budget")
        if self.bits != 8 and self.fallback:
            raise QyoloError("--bits below 8 does not combine with --auto-fallback / --fallback-budget")
        if self.weight_clip != "minmax" and self.fallback:
            raise QyoloError("--weight-clip mse does not combine with --auto-fallback / --fallback-budget")
        if self.bits != 8 and self.bias_correction:
            raise QyoloError("--bits below 8 does not combine with --bias-correction")
        from .qdq.float16 import FLOAT_DTYPES

        if self.float_dtype not in FLOAT_DTYPES or self.io_dtype not in FLOAT_DTYPES:
            raise QyoloError(f"--float-dtype and --io-dtype take {' or '.join(FLOAT_DTYPES)}")
        if self.float_dtype == "fp32" and self.io_dtype == "fp16":
            raise QyoloError("--io-dtype fp16 needs --float-dtype fp16")
        if self.float_dtype == "fp16" and self.bits != 8:
            raise QyoloError("--float-dtype fp16 does not combine with --bits below 8")


def apply(model: onnx.ModelProto, scales: ScalesFile, recipe: Recipe) -> QuantizeResult:
    """The QDQ model of ``recipe`` (its report says what each step did)."""
    recipe.check()
    model = normalize(model)
    options = {"mode": recipe.mode, "exclude": recipe.exclude, "keep_float": recipe.keep_float,
               "allow_missing": recipe.allow_missing, "check_hash": recipe.check_hash}
    if recipe.fallback:
        from .analysis import auto_fallback, load_feeds

        feeds = load_feeds(model, recipe.fallback_images or default_calib(), recipe.fallback_num_images)
        result = auto_fallback(model, scales, feeds, k=recipe.fallback_k, budget_db=recipe.fallback_db, **options)
    else:
        result = quantize(model, scales, **options, weight_clip=recipe.weight_clip)
    if recipe.bias_correction:
        result = correct_on_images(result, model, recipe.bias_images or default_calib(), recipe.bias_num_images)
    if recipe.bits != 8 or scales.params.get("bits", 8) != 8:
        from .analysis.lowbit import check_bits, lower_bits

        check_bits(scales, recipe.bits, recipe.mode)
        result.model = lower_bits(result.model, model, recipe.bits)
        result.report["bits"] = recipe.bits
        store_report(result.model, result.report)
    if recipe.float_dtype == "fp16":
        from .qdq.float16 import to_float16

        result.model = to_float16(result.model, recipe.io_dtype)
        result.report.update(float_dtype="fp16", io_dtype=recipe.io_dtype)
        store_report(result.model, result.report)
    return result
