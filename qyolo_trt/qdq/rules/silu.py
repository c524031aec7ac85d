"""SiLU = Mul(x, Sigmoid(x)) as two quantized ops: the conv output ``x`` and the sigmoid output get Q/DQ.

Only the ONNX Runtime profile applies these rules: its CPU kernels fuse DQ -> Conv -> Q into ``QLinearConv`` only
when a Q follows the conv's output, then run the SiLU as ``QLinearSigmoid`` + ``QLinearMul``. TensorRT fuses
Conv + SiLU itself and must see no Q/DQ inside it (``lint`` code ``silu-qdq``).

A SiLU whose output a float-kept node reads (the head convs) stays float, and so its conv runs with a float output:
the float node then reads exact values, as it does on TensorRT, where the SiLU is fused into the conv. Quantizing
that SiLU cost FP32 agreement on yolov5n (README, "CPU speed per target").
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from .base import GraphView, Placement, register


def _sigmoid_of(tensor: gs.Tensor) -> gs.Tensor | None:
    """The input of the Sigmoid producing ``tensor``, if one does."""
    producer = tensor.inputs[0] if len(tensor.inputs) == 1 else None
    return producer.inputs[0] if producer is not None and producer.op == "Sigmoid" else None


def _silu_muls(sigmoid: gs.Node) -> list[gs.Node]:
    """The Muls that complete a SiLU with ``sigmoid`` (none: not a SiLU's Sigmoid)."""
    x = sigmoid.inputs[0]
    return [m for m in sigmoid.outputs[0].outputs if m.op == "Mul" and x in m.inputs]


@register("Sigmoid")
def sigmoid_rule(node: gs.Node, view: GraphView) -> Placement | None:
    """A SiLU's Sigmoid: quantize its input (the activation before the SiLU); decode sigmoids stay float."""
    muls = _silu_muls(node)
    if not view.is_data(node.inputs[0]) or not muls or any(view.feeds_float(m.outputs[0]) for m in muls):
        return None
    return Placement(activations=[0])


@register("Mul")
def silu_mul_rule(node: gs.Node, view: GraphView) -> Placement | None:
    """A SiLU's Mul(x, Sigmoid(x)) (either order): quantize both inputs; every other Mul stays float."""
    if len(node.inputs) != 2 or not all(view.is_data(t) for t in node.inputs) or view.feeds_float(node.outputs[0]):
        return None
    a, b = node.inputs
    return Placement(activations=[0, 1]) if _sigmoid_of(b) is a or _sigmoid_of(a) is b else None
