"""MaxPool / Resize commute with Q/DQ: the same scale in and out (data input only)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from .base import GraphView, Placement, register


@register("MaxPool", "Resize")
def pool_resize_rule(node: gs.Node, view: GraphView) -> Placement | None:
    if not view.is_data(node.inputs[0]):
        return None
    return Placement(activations=[0], group=True)
