"""FP32 graph normalisation before any pass: constant ``Identity`` nodes become initializers of their own.

torch's exporter merges equal initializers and re-creates the duplicates as ``Identity`` nodes (every Ultralytics
anchor-free export has dozens, one per conv bias that happens to equal another). A conv whose bias arrives through
such a node has no constant bias of its own, so calibration, Q/DQ placement and bias correction could not see it.
Each one is replaced by a copy of its source constant under the Identity's output name: same values, no sharing
(bias correction may then edit one conv's bias without touching another's). Activation tensors are never renamed.
"""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from .model import copy_model


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found


def constant_identities(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The Identity nodes whose input is a constant (directly or through other such Identities)."""
    constants = set(_constants(graph))
    graph_outputs = {o.name for o in graph.output}
    found = []
    for node in graph.node:  # ONNX graphs are topologically sorted: a chain resolves front to back
        if node.op_type == "Identity" and node.input[0] in constants and node.output[0] not in graph_outputs:
            found.append(node)
            constants.add(node.output[0])
    return found


def normalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its constant Identity chains folded into initializers; ``model`` itself when there are none."""
    if not constant_identities(model.graph):
        return model
    out = copy_model(model)
    graph = out.graph
    values = _constants(graph)
    folded = constant_identities(graph)
    for node in folded:
        values[node.output[0]] = numpy_helper.from_array(numpy_helper.to_array(values[node.input[0]]), node.output[0])
        graph.initializer.append(values[node.output[0]])
    drop = {id(n) for n in folded}
    kept = [n for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    sources = {n.input[0] for n in folded} - used  # merged originals no node reads any more
    kept_init = [t for t in graph.initializer if t.name not in sources]
    del graph.initializer[:]
    graph.initializer.extend(kept_init)
    return out
