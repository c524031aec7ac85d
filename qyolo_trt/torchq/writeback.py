"""Write a ``TorchGraph``'s weight integers and conv biases (``write_back``) and its activation step sizes
(``write_act_scales``) back into its QDQ ONNX model (same graph, new values)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import QyoloError
from ..model import copy_model
from .graph import TorchGraph


def write_back(model: onnx.ModelProto, graph: TorchGraph, weights: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` with the integers of ``weights`` (as their quantizers hold them, written exactly in the
    initializer's own type, int8 or int4) and the float bias of every conv reading one of them (``ConvBias.exact``:
    a refitted bias, and the shift fold recomputed for the new integers; bit for bit the model's own bias while its
    integers and delta are unchanged)."""
    out = copy_model(model)
    inits = {t.name: t for t in out.graph.initializer}
    weights = set(weights)
    for name in weights:
        src = graph.weight_sources[name]
        init = inits[src.integers]
        init.CopyFrom(_integer_tensor(init.name, graph.weight(name).integers(), init.data_type))
    readers = _readers(out.graph)
    convs = {n.name: n for n in out.graph.node}
    for conv, src in graph.bias_sources.items():
        if src.weight not in weights:
            continue
        w = graph.weight(src.weight)
        dequantized = w.integers().astype(np.float32) * w.scale.numpy().astype(np.float32)  # as the forward and ConvBias's init
        bias = numpy_helper.from_array(graph.bias(conv).exact(dequantized), src.initializer)
        if readers[src.initializer] > 1:  # a bias shared with another conv gets a copy of its own
            bias.name = f"{conv}_bias"
            convs[conv].input[2] = bias.name
            out.graph.initializer.append(bias)
        else:
            inits[src.initializer].CopyFrom(bias)
    return out


def write_act_scales(model: onnx.ModelProto, graph: TorchGraph) -> onnx.ModelProto:
    """A copy of ``model`` with each activation quantizer's (learned) step size in its Q/DQ scale initializer; a
    low-bit Clip folded into the quantizer gets the bounds of the new grid (``(qmin - zp) * s``, ``(qmax - zp) * s``)."""
    out = copy_model(model)
    inits = {t.name: t for t in out.graph.initializer}
    nodes = {n.name: n for n in out.graph.node}
    producer = {o: n for n in out.graph.node for o in n.output}
    written: dict[str, float] = {}
    for step in (s for s in graph.steps if s.op == "ActQuant"):
        act, name = graph.acts[step.key], nodes[step.name].input[1]
        scale = np.float32(act.scale.detach().item())
        if written.setdefault(name, scale) != scale:
            raise QyoloError(f"torchq: scale {name!r} is shared by quantizers that learned different values")
        _set(inits, name, scale)
        clip = producer[step.outputs[0]]
        if clip.op_type == "Clip":
            _set(inits, clip.input[1], np.float32((act.qmin - act.zero_point) * scale))
            _set(inits, clip.input[2], np.float32((act.qmax - act.zero_point) * scale))
    return out


def _set(inits: dict[str, onnx.TensorProto], name: str, value: np.float32) -> None:
    if name not in inits:
        raise QyoloError(f"torchq: {name!r} is not an initializer; cannot write a learned scale into it")
    dtype = helper.tensor_dtype_to_np_dtype(inits[name].data_type)
    inits[name].CopyFrom(numpy_helper.from_array(np.array(value, dtype=dtype), name))


def _integer_tensor(name: str, values: np.ndarray, data_type: int) -> onnx.TensorProto:
    if data_type == TensorProto.INT4:
        return helper.make_tensor(name, TensorProto.INT4, list(values.shape), values.astype(np.int32).ravel().tolist())
    return numpy_helper.from_array(values.astype(helper.tensor_dtype_to_np_dtype(data_type)), name)


def _readers(graph: onnx.GraphProto) -> dict[str, int]:
    count: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            count[name] = count.get(name, 0) + 1
    return count
