"""The public Python API: ``from qyolo_trt import calibrate, quantize, build, evaluate, compare``.

Each function is what the CLI command of the same name runs (the CLI only parses options and prints).
``None`` for a model or an image source means the embedded default (yolov5n + its 16 calibration images).
Sources of images are anything ``qyolo_trt.data.list_images`` reads: a folder, a ``.txt`` list, a YOLO set,
a COCO json, one image, or a list of paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import onnx

from .pipeline import BuildRequest
from .calib.scales import ScalesFile
from .defaults import DEFAULT_METHOD, default_calib, default_model
from .errors import QyoloError
from .qdq.config import ImageSource, QuantizeConfig
from .qdq.quantize import QuantizeResult

Recipe = QuantizeConfig  # the name the public API has always used

ModelSource = str | os.PathLike | onnx.ModelProto


def _model(model: ModelSource | None) -> onnx.ModelProto:
    from .model import load_onnx

    if isinstance(model, onnx.ModelProto):
        return model
    return load_onnx(model if model is not None else default_model())


def calibrate(model: ModelSource | None = None, images: ImageSource | None = None, *, methods: Sequence[str] = (DEFAULT_METHOD,),
              num_images: int | None = None, **options: Any) -> dict[str, ScalesFile]:
    """Calibrate ``model`` on ``images`` in one streamed pass; one ``ScalesFile`` per method (``uh``, ``minmax``,
    ``percentile``, ``entropy``, ``mse``). ``options``: ``batch``, ``bins``, ``percentile``, ``bits``, ``sample_stride``."""
    from .calib.api import calibrate as run

    return run(_model(model), images if images is not None else default_calib(), methods=tuple(methods), num_images=num_images, **options)


def quantize(model: ModelSource | None = None, scales: ScalesFile | str | os.PathLike | None = None, *,
             images: ImageSource | None = None, config: QuantizeConfig = QuantizeConfig(), method: str = DEFAULT_METHOD,
             num_images: int | None = None) -> QuantizeResult:
    """The QDQ model of ``model`` under ``config`` (placement mode, exclusions, fallback, bias correction, weight and
    activation bits).

    ``scales``: a ``ScalesFile`` or a scales JSON path; ``None`` calibrates with ``method`` on ``images`` first.
    The result's ``model`` is an ``onnx.ModelProto`` (``onnx.save`` it), ``report`` says what each step did.
    """
    from .qdq.pipeline import check_ready, run

    check_ready(config)
    proto = _model(model)
    if scales is None:
        src = images if images is not None else default_calib()
        scales = calibrate(proto, src, methods=(method,), num_images=num_images, bits=config.act_bits)[method]
        if images is not None:  # the passes that need images use the calibration images unless told otherwise
            config = config.with_images(images)
    elif not isinstance(scales, ScalesFile):
        scales = ScalesFile.load(scales)
    return run(proto, scales, config)


def build(model: str | os.PathLike | None = None, **options: Any) -> dict[str, Any]:
    """Export (``.pt``/``.yaml``), calibrate, quantize and build TensorRT engine(s); writes them (and the scales file,
    QDQ model and sidecar reports) atomically and returns the summary. ``options`` are ``BuildRequest``'s fields:
    ``calib``, ``num_images``, ``method``, ``mode``, ``bias_correction``, ``precision``, ``backend``, ``gpus``,
    ``batch``, ``timing_cache``, ``nms``, ``triton_repo``, ``model_name``, ``output``."""
    from .pipeline import run_build

    known = {f.name for f in fields(BuildRequest)} - {"model"}
    if bad := sorted(set(options) - known):
        raise QyoloError(f"unknown build option(s) {', '.join(bad)}; choose from {', '.join(sorted(known))}")
    return run_build(BuildRequest(model=Path(model) if model is not None else None, **options))


def evaluate(model: str | os.PathLike, data: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """COCO mAP50-95 / mAP50 of ``model`` (ONNX, QDQ ONNX or engine) on ``data``; with ``reference=FP32.onnx`` also
    FP32 agreement and head SQNR. ``options``: ``backend``, ``reference``, ``post`` (``PostProcess``), ``num_images``."""
    from .eval.evaluate import evaluate as run

    return run(model, data, **options)


def compare(model: str | os.PathLike | None = None, calib: ImageSource | None = None, data: str | os.PathLike | None = None,
            *, num_calib: int | None = None, num_images: int | None = None, calib_split: int | None = None,
            **options: Any) -> dict[str, Any]:
    """FP32, every calibration method x mode (and the peer quantizers) on the same ``data`` images, calibrated on the
    disjoint ``calib`` images (or, with ``calib_split=N``, on the first N images of ``data``, evaluated on the rest):
    one result with a row per variant. ``options``: see ``qyolo_trt.eval.compare.compare``."""
    from .data import list_images
    from .eval.compare import compare as run

    if data is None:
        raise QyoloError("compare needs data: a COCO instances json or a YOLO set (images/ + labels/)")
    images = list_images(data)
    if calib_split is not None:
        if calib is not None:
            raise QyoloError("give --calib or --calib-split, not both")
        if not 0 < calib_split < len(images):
            raise QyoloError(f"--calib-split {calib_split}: {data} has {len(images)} images; leave some to evaluate on")
        calib_paths, images = images[:calib_split][: num_calib or None], images[calib_split:]
    else:
        calib_paths = list_images(calib if calib is not None else default_calib(), limit=num_calib)
    return run(model if model is not None else default_model(), calib_paths, images[: num_images or None], data, **options)


__all__ = ["BuildRequest", "QuantizeConfig", "QuantizeResult", "QyoloError", "Recipe", "ScalesFile", "build", "calibrate", "compare", "evaluate", "quantize"]
