"""A pass: low-bit (W{w}A{a}) simulation of a QDQ model for ONNX Runtime.

Below 8 bits, weights are re-quantized from the FP32 model per output channel on the symmetric w-bit grid
[-qmax, qmax] (MinMax, as the paper); at 8 they keep the rewrite's int8 integers. Activation Q/DQ keep the scales
calibrated for a bits (``calibrate(bits=a)``). At 4 bits the weights are stored as real int4 (DequantizeLinear,
opset 21); at other widths as int8 holding w-bit values. Below 8 bits, activations keep their int8 / uint8 Q/DQ with
a-bit scales, and a Clip after each activation DequantizeLinear saturates it to the a-bit grid: exactly the a-bit
fake-quantization. (Not int4 activation Q/DQ: ONNX Runtime's QDQ fusions reject int4 around MaxPool, and int4
saturates at [-8, 7], not the searched [-7, 7].)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...defaults import DEFAULT_BITS
from ...errors import QyoloError
from ...model import copy_model, raise_default_opset
from ..config import QuantizeConfig, check_widths
from ..quantize import QuantizeResult
from ..weights import quantize_per_channel
from .base import PassContext, register, with_report

NATIVE_BITS = 4  # ONNX Runtime runs int4 DequantizeLinear (opset 21)
INT4_OPSET = 21
INT4_IR = 10


@register(order=20)
class LowBitPass:
    name = "lowbit"

    def enabled(self, config: QuantizeConfig) -> bool:
        return config.lowbit

    def apply(self, result: QuantizeResult, fp32: onnx.ModelProto, ctx: PassContext) -> QuantizeResult:
        w, a = ctx.config.weight_bits, ctx.config.act_bits
        return with_report(lower_bits(result.model, fp32, w, a), {**result.report, **width_report(w, a)})


def width_report(weight_bits: int, act_bits: int) -> dict[str, int]:
    """The report's widths: ``bits`` when weights and activations share it (as before the split), else both."""
    return {"bits": weight_bits} if weight_bits == act_bits else {"weight_bits": weight_bits, "act_bits": act_bits}


def width_label(report: dict) -> str:
    """``W{w}A{a}`` of a stored report (8 bits when it names none)."""
    bits = report.get("bits", DEFAULT_BITS)
    return f"W{report.get('weight_bits', bits)}A{report.get('act_bits', bits)}"


def lower_bits(qdq: onnx.ModelProto, fp32: onnx.ModelProto, weight_bits: int, act_bits: int | None = None) -> onnx.ModelProto:
    """A copy of the int8 QDQ model ``qdq`` (of ``fp32``, activation scales calibrated for ``act_bits``) with weights
    on the ``weight_bits`` grid and activations on the ``act_bits`` grid (None: ``weight_bits``)."""
    act_bits = weight_bits if act_bits is None else act_bits
    check_widths({"--weight-bits": weight_bits, "--act-bits": act_bits})
    out = copy_model(qdq)
    if weight_bits == act_bits == DEFAULT_BITS:
        return out
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    floats = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    clips: list[onnx.NodeProto] = []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits and weight_bits != DEFAULT_BITS:
            _requantize_weight(node, inits, floats, weight_bits)
        elif node.op_type == "QuantizeLinear" and node.input[0] not in inits and act_bits != DEFAULT_BITS:
            clips += _lower_activation(node, g, inits, act_bits)
    g.node.extend(clips)
    if weight_bits == NATIVE_BITS:
        _set_opset(out, INT4_OPSET)
    return _toposorted(out)


def _requantize_weight(node: onnx.NodeProto, inits: dict, floats: dict, bits: int) -> None:
    """Per-channel symmetric b-bit weight from the FP32 initializer named like the DQ output."""
    q_init, s_init = inits[node.input[0]], inits[node.input[1]]
    scale8 = numpy_helper.to_array(s_init)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    w = floats.get(node.output[0])
    if w is None:  # a weight that was not an initializer in the FP32 model: dequantize the int8 values
        shape = [1] * len(q_init.dims)
        shape[axis] = -1
        w = numpy_helper.to_array(q_init).astype(np.float32) * scale8.reshape(shape)
    q, scale = quantize_per_channel(w, axis % w.ndim, bits=bits, name=node.output[0])
    s_init.CopyFrom(numpy_helper.from_array(scale, s_init.name))
    q_init.CopyFrom(_int_tensor(q_init.name, q, bits))
    if len(node.input) > 2 and node.input[2] in inits:
        z = inits[node.input[2]]
        z.CopyFrom(_int_tensor(z.name, np.zeros(scale.shape, np.int8), bits))


def _lower_activation(q: onnx.NodeProto, g: onnx.GraphProto, inits: dict, bits: int) -> list[onnx.NodeProto]:
    """Re-grid one activation Q/DQ pair; returns the Clip node to add after its DequantizeLinear."""
    s_init, z_init = inits[q.input[1]], inits[q.input[2]]
    scale, zp = float(numpy_helper.to_array(s_init)), int(numpy_helper.to_array(z_init))
    signed = z_init.data_type == TensorProto.INT8
    if signed:
        qmin, qmax = -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    else:  # asymmetric: keep [lower, upper] of the uint8 grid, spread it over 2**bits - 1 steps
        steps = 2**bits - 1
        scale, zp = scale * 255 / steps, int(round(zp * steps / 255))
        qmin, qmax = 0, steps
        s_init.CopyFrom(numpy_helper.from_array(np.array(scale, np.float32), s_init.name))
    z_init.CopyFrom(numpy_helper.from_array(np.array(zp, np.int8 if signed else np.uint8), z_init.name))
    dq = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    out = dq.output[0]
    dq.output[0] = f"{out}_{bits}bit"
    lo, hi = (f"{out}_clip_min", f"{out}_clip_max")
    g.initializer.extend([numpy_helper.from_array(np.array((qmin - zp) * scale, np.float32), lo),
                          numpy_helper.from_array(np.array((qmax - zp) * scale, np.float32), hi)])  # fmt: skip
    return [helper.make_node("Clip", [dq.output[0], lo, hi], [out], name=f"{dq.name}_clip{bits}")]


def _int_tensor(name: str, values: np.ndarray, bits: int) -> onnx.TensorProto:
    """A weight tensor: int4 at the native width, else int8."""
    if bits == NATIVE_BITS:
        return helper.make_tensor(name, TensorProto.INT4, list(values.shape), values.astype(np.int32).ravel().tolist())
    return numpy_helper.from_array(values.astype(np.int8), name)


def _set_opset(model: onnx.ModelProto, opset: int) -> None:
    raise_default_opset(model, opset)
    model.ir_version = max(model.ir_version, INT4_IR)


def _toposorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """Nodes in dependency order (the Clips were appended at the end)."""
    g = model.graph
    ready = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise QyoloError("low-bit rewrite produced a cyclic graph")
        ordered += done
        ready.update(o for n in done for o in n.output)
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
    return model
