"""What a placement rule sees (a read-only view of the FP32 graph) and what it returns (a Placement)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import onnx_graphsurgeon as gs


# ops whose outputs are not float activations even when their input is one
NON_DATA_OPS = frozenset({"Shape", "Size", "NonZero", "ArgMax", "ArgMin", "TopK"})


@dataclass
class Placement:
    """Where one node wants quantizers: data inputs (by index), weights (index, per-channel axis), and
    whether its inputs and output form one shared-scale group (Concat, MaxPool, Resize)."""

    activations: list[int] = field(default_factory=list)
    weights: list[tuple[int, int]] = field(default_factory=list)
    group: bool = False


class GraphView:
    """Structural facts about a graph that the rules need: which tensors are float activations, which nodes stay float."""

    def __init__(self, graph: gs.Graph, kept_float: frozenset[int] = frozenset()):
        self.graph = graph
        self.data = _data_tensors(graph)
        self.kept_float = kept_float  # ids of the nodes the rewrite keeps float (head, first conv, --exclude)

    def is_data(self, tensor: gs.Tensor) -> bool:
        """A float activation: flows from the graph input through non-shape ops."""
        return tensor.name in self.data

    def feeds_float(self, tensor: gs.Tensor) -> bool:
        """Whether a node kept float reads ``tensor``."""
        return any(id(n) in self.kept_float for n in tensor.outputs)


def _data_tensors(graph: gs.Graph) -> set[str]:
    data = {t.name for t in graph.inputs}
    for node in graph.nodes:  # the graph is toposorted by the caller
        if node.op in NON_DATA_OPS or (node.op == "Cast" and node.attrs.get("to") not in (1, 10, 11, 16)):
            continue
        if any(t.name in data for t in node.inputs):
            data.update(t.name for t in node.outputs)
    return data


Rule = Callable[[gs.Node, GraphView], "Placement | None"]
RULES: dict[str, Rule] = {}


def register(*ops: str) -> Callable[[Rule], Rule]:
    """Register a placement rule for ``ops`` (op type -> rule)."""

    def deco(rule: Rule) -> Rule:
        for op in ops:
            RULES[op] = rule
        return rule

    return deco
