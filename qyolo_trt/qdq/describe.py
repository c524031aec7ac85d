"""What is in a QDQ ONNX model (ours or another tool's): op counts, quantized ops, our stored report, the target it was
placed for, lint against that target's rules."""

from __future__ import annotations

from collections import Counter
from typing import Any

import onnx

from ..defaults import DEFAULT_TARGET
from .lint import lint
from .quantize import read_report

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def describe_qdq(model: onnx.ModelProto, target: str | None = None) -> dict[str, Any]:
    """Op counts, ops reading a DequantizeLinear output (by type), Q/DQ counts, the rewrite report, the target and the
    lint issues of its rules. ``target`` None: the one our report names (a report without one, or another tool's
    model: TensorRT)."""
    nodes = model.graph.node
    dq_outputs = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    quantized = Counter(n.op_type for n in nodes if n.op_type not in QDQ_OPS and any(i in dq_outputs for i in n.input))
    report = read_report(model)
    target = target or (report or {}).get("target", DEFAULT_TARGET)
    issues = lint(model, target)
    return {
        "ops": dict(sorted(Counter(n.op_type for n in nodes).items())),
        "quantized_ops": dict(sorted(quantized.items())),
        "qdq": {op: sum(n.op_type == op for n in nodes) for op in QDQ_OPS},
        "report": report,
        "target": target,
        "lint": [i.to_dict() for i in issues],
        "lint_errors": sum(i.severity == "error" for i in issues),
    }
