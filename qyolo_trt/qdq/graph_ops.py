"""onnx-graphsurgeon helpers for the QDQ rewrite, registered on ``gs.Graph`` (``graph.insert_qdq(...)``).

New tensors get new names; every original tensor keeps its name (a quantized weight's DequantizeLinear
output takes the weight's name, the float original is renamed ``<name>_float``).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from .weights import quantize_per_channel


def constant_values(tensor: gs.Tensor) -> np.ndarray | None:
    """Values of a constant tensor: an initializer, a Constant node's output, or an Identity of either."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if len(tensor.inputs) != 1:
        return None
    producer = tensor.inputs[0]
    if producer.op == "Constant" and isinstance(producer.attrs.get("value"), gs.Constant):
        return np.asarray(producer.attrs["value"].values)
    if producer.op == "Identity":
        return constant_values(producer.inputs[0])
    return None


@gs.Graph.register()
def insert_qdq(self: gs.Graph, tensor: gs.Tensor, scale: float, zero_point: int = 0, dtype: type = np.int8) -> gs.Variable:
    """Add QuantizeLinear -> DequantizeLinear after ``tensor``; returns the dequantized tensor (consumers are not rewired)."""
    name = tensor.name
    s = gs.Constant(f"{name}_qscale", np.array(scale, dtype=np.float32))
    zp = gs.Constant(f"{name}_qzero", np.array(zero_point, dtype=dtype))
    q = gs.Variable(f"{name}_quantized", dtype=dtype, shape=tensor.shape)
    dq = gs.Variable(f"{name}_dequantized", dtype=np.float32, shape=tensor.shape)
    self.nodes.append(gs.Node("QuantizeLinear", f"{name}_QuantizeLinear", inputs=[tensor, s, zp], outputs=[q]))
    self.nodes.append(gs.Node("DequantizeLinear", f"{name}_DequantizeLinear", inputs=[q, s, zp], outputs=[dq]))
    return dq


@gs.Graph.register()
def quantize_weight_per_channel(self: gs.Graph, node: gs.Node, index: int, axis: int, clip: str = "minmax") -> np.ndarray:
    """Replace ``node.inputs[index]`` (a constant weight) by int8 values + per-channel scales -> DequantizeLinear.

    The DequantizeLinear output takes the weight's name. Returns the float weight that was quantized.
    """
    tensor = node.inputs[index]
    weight = constant_values(tensor)
    name = tensor.name
    tensor.name = f"{name}_float"
    q, scale = quantize_per_channel(weight, axis, clip, name)
    out = gs.Variable(name, dtype=np.float32, shape=list(weight.shape))
    inputs = [
        gs.Constant(f"{name}_int8", q),
        gs.Constant(f"{name}_wscale", scale),
        gs.Constant(f"{name}_wzero", np.zeros(scale.shape, dtype=np.int8)),
    ]
    self.nodes.append(gs.Node("DequantizeLinear", f"{name}_DequantizeLinear", attrs={"axis": axis}, inputs=inputs, outputs=[out]))
    node.inputs[index] = out
    return weight


@gs.Graph.register()
def insert_shift(self: gs.Graph, tensor: gs.Tensor, shift: float) -> gs.Variable:
    """Add ``tensor - shift`` (a Sub with a scalar constant); returns the shifted tensor."""
    c = gs.Constant(f"{tensor.name}_shift", np.array(shift, dtype=np.float32))
    out = gs.Variable(f"{tensor.name}_shifted", dtype=np.float32, shape=tensor.shape)
    self.nodes.append(gs.Node("Sub", f"{tensor.name}_Sub", inputs=[tensor, c], outputs=[out]))
    return out


@gs.Graph.register()
def insert_pad(self: gs.Graph, tensor: gs.Tensor, pads: tuple[int, ...]) -> gs.Variable:
    """Add a zero ``Pad`` of an NCHW ``tensor`` by a conv's ``pads`` (top, left, bottom, right); returns the padded tensor."""
    top, left, bottom, right = pads
    amounts = gs.Constant(f"{tensor.name}_pads", np.array([0, 0, top, left, 0, 0, bottom, right], dtype=np.int64))
    out = gs.Variable(f"{tensor.name}_padded", dtype=np.float32)
    self.nodes.append(gs.Node("Pad", f"{tensor.name}_Pad", inputs=[tensor, amounts], outputs=[out], attrs={"mode": "constant"}))
    return out


@gs.Graph.register()
def add_to_bias(self: gs.Graph, conv: gs.Node, delta: np.ndarray) -> None:
    """Add ``delta`` (one value per output channel) to a Conv's bias, creating the bias if absent.

    A bias used by this conv alone keeps its name (the old tensor becomes ``<name>_float``)."""
    old = conv.inputs[2] if len(conv.inputs) > 2 else None
    bias = constant_values(old) if old is not None else np.zeros(delta.shape, dtype=np.float32)
    name = f"{conv.outputs[0].name}_bias_shifted"
    if old is not None and len(old.outputs) == 1:
        name, old.name = old.name, f"{old.name}_float"
    new = gs.Constant(name, (bias + delta).astype(np.float32))
    if old is None:
        conv.inputs.append(new)
    else:
        conv.inputs[2] = new
