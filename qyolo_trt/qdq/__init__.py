"""TensorRT-aware QDQ rewrite of an FP32 YOLO ONNX model, and a lint of TensorRT's explicit-quantization rules."""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from .lint import LintIssue, lint
from .quantize import MODES, REPORT_KEY, QuantizeResult, quantize
from .rules import find_head


def head_conv_outputs(model: onnx.ModelProto) -> list[str]:
    """Output tensor names of the detection head's final convs (found structurally)."""
    graph = gs.import_onnx(model)
    graph.toposort()
    return [c.outputs[0].name for c in find_head(graph).final_convs]


__all__ = ["MODES", "REPORT_KEY", "LintIssue", "QuantizeResult", "head_conv_outputs", "lint", "quantize"]
