"""Residual Add: quantize both inputs so the add fuses into the producing conv's epilogue (TensorRT)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from .base import GraphView, Placement, register


@register("Add")
def add_rule(node: gs.Node, view: GraphView) -> Placement | None:
    """Only an Add of two activations is residual; adds of constants (decode, shape arithmetic) stay float."""
    if len(node.inputs) != 2 or not all(view.is_data(t) for t in node.inputs):
        return None
    return Placement(activations=[0, 1])
