"""Structural detection of the detection head (no node names).

Backbone and neck convs are followed by an activation (SiLU = Sigmoid + Mul). The head's final convs are
the convs with no activation after them from which no activated conv can be reached: for yolov5
(anchor-based) the three 1x1 convs feeding Reshape/decode; for v5u/v8/11 (anchor-free) the last conv of
each box and class branch plus the DFL conv. The head is those convs and everything downstream of them
(DFL softmax, decode arithmetic, concatenation of the outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx_graphsurgeon as gs

ACTIVATIONS = frozenset(  # a bare Sigmoid is decode (objectness/class scores); Sigmoid -> Mul(x, .) is SiLU
    {"Relu", "LeakyRelu", "PRelu", "HardSigmoid", "HardSwish", "Elu", "Selu", "Tanh", "Mish", "Softplus", "Gelu", "Clip"}
)
CONVS = frozenset({"Conv", "ConvTranspose"})


@dataclass
class Head:
    """The head's final convs (branch outputs), all its convs (with DFL), and every node in it."""

    final_convs: list[gs.Node]
    convs: list[gs.Node]
    nodes: list[gs.Node]


def _consumers(node: gs.Node) -> list[gs.Node]:
    return [c for t in node.outputs for c in t.outputs]


def _is_activated(conv: gs.Node) -> bool:
    """The conv's output goes through an activation (SiLU counts, a bare Sigmoid does not)."""
    out = conv.outputs[0]
    silu = any(c.op == "Sigmoid" and any(m.op == "Mul" and out in m.inputs for m in c.outputs[0].outputs) for c in out.outputs)
    return silu or any(c.op in ACTIVATIONS for c in out.outputs)


def find_head(graph: gs.Graph) -> Head:
    """Find the head of a toposorted graph."""
    activated = {id(n) for n in graph.nodes if n.op in CONVS and _is_activated(n)}
    reaches: set[int] = set()  # nodes from which an activated conv can be reached
    for node in reversed(graph.nodes):
        if any(id(c) in activated or id(c) in reaches for c in _consumers(node)):
            reaches.add(id(node))
    convs = [n for n in graph.nodes if n.op in CONVS and id(n) not in activated and id(n) not in reaches]
    in_head = {id(n) for n in convs}
    for node in graph.nodes:  # toposorted: producers come first
        if any(id(p) in in_head for t in node.inputs for p in t.inputs):
            in_head.add(id(node))
    final = [c for c in convs if not any(id(p) in in_head for p in c.inputs[0].inputs)]
    return Head(final_convs=final, convs=convs, nodes=[n for n in graph.nodes if id(n) in in_head])


def first_conv(graph: gs.Graph) -> gs.Node | None:
    """The first conv reading the graph input."""
    names = {t.name for t in graph.inputs}
    return next((n for n in graph.nodes if n.op in CONVS and n.inputs[0].name in names), None)
