"""TensorRT-aware QDQ rewrite of an FP32 YOLO ONNX model, the passes around it (``pipeline.run``), and a lint of
TensorRT's explicit-quantization rules."""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from .lint import LintIssue, lint
from .config import QuantizeConfig
from .quantize import REPORT_KEY, QuantizeResult, quantize
from .rules import find_head


def head_conv_outputs(model: onnx.ModelProto) -> list[str]:
    """Output tensor names of the detection head's final convs (found structurally)."""
    graph = gs.import_onnx(model)
    graph.toposort()
    return [c.outputs[0].name for c in find_head(graph).final_convs]


__all__ = ["REPORT_KEY", "LintIssue", "QuantizeConfig", "QuantizeResult", "head_conv_outputs", "lint", "quantize"]
