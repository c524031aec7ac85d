"""qyolo-trt: FP32 YOLO -> accurate INT8 TensorRT engines (Q-YOLO UH calibration, TensorRT-aware QDQ).

Public API (imported on first use, so ``import qyolo_trt`` stays light)::

    from qyolo_trt import calibrate, quantize, build, evaluate, compare
    from qyolo_trt import QuantizeConfig (alias Recipe), ScalesFile, QuantizeResult, BuildRequest, QyoloError
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["BuildRequest", "QuantizeConfig", "QuantizeResult", "QyoloError", "Recipe", "ScalesFile", "__version__", "build", "calibrate", "compare", "evaluate", "quantize"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'qyolo_trt' has no attribute {name!r}")
