"""Conv / ConvTranspose / Gemm / MatMul: Q/DQ on data inputs, per-output-channel int8 weights, float bias."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from ..graph_ops import constant_values
from .base import GraphView, Placement, register


def weight_axis(node: gs.Node, ndim: int) -> int:
    """The output-channel axis of a node's weight (input 1)."""
    if node.op == "Conv":
        return 0
    if node.op == "ConvTranspose":
        return 1
    if node.op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    return ndim - 1  # MatMul: B is [..., K, N]


@register("Conv", "ConvTranspose", "Gemm", "MatMul")
def conv_rule(node: gs.Node, view: GraphView) -> Placement | None:
    if not view.is_data(node.inputs[0]):
        return None
    place = Placement(activations=[0])
    w = node.inputs[1]
    values = constant_values(w)
    if values is not None:
        place.weights.append((1, weight_axis(node, values.ndim)))
    elif view.is_data(w) and node.op in ("MatMul", "Gemm"):
        place.activations.append(1)
    else:
        return None
    return place
