"""Concat: every input and the output share one scale, so the concat is a no-op in INT8."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from .base import GraphView, Placement, register


@register("Concat")
def concat_rule(node: gs.Node, view: GraphView) -> Placement | None:
    if not node.inputs or not all(view.is_data(t) for t in node.inputs):
        return None
    return Placement(activations=list(range(len(node.inputs))), group=True)
