"""Empirical bias correction of a QDQ model: each quantized conv's per-output-channel mean error, folded into its bias.

For every Conv with int8 weights, a float twin (the FP32 weight and bias) reads the tensor the conv's Q/DQ
quantizes (before the shift of a shifted-symmetric tensor), so the twin shows what the conv should output for
the input it actually gets. One ONNX Runtime pass over the images streams both outputs' channel means; the bias
gains ``mean(twin) - mean(conv)``. Only the float bias changes: TensorRT placement and Q/DQ are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...backends.ort.session import make_session
from ...data.feeds import Feeds, count_images
from ...errors import QyoloError
from ...model import copy_model
from ...progress import progress
from ..config import QuantizeConfig
from ..quantize import QuantizeResult
from .base import PassContext, register, with_report

TWIN = "_bias_twin"


def _quantized_convs(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Convs with DequantizeLinear weights and a bias initializer."""
    inits = {i.name for i in model.graph.initializer}
    dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in dq and len(n.input) > 2 and n.input[2] in inits]


def _float_input(conv: onnx.NodeProto, producer: dict[str, onnx.NodeProto]) -> str:
    """The float tensor behind the conv's input Q/DQ (and behind a shift ``Sub``), or the input itself."""
    name = conv.input[0]
    for op in ("DequantizeLinear", "QuantizeLinear"):
        node = producer.get(name)
        if node is None or node.op_type != op:
            return conv.input[0]
        name = node.input[0]
    node = producer.get(name)
    return node.input[0] if node is not None and node.op_type == "Sub" and node.input[1] == f"{node.input[0]}_shift" else name


def _probe(qdq: onnx.ModelProto, fp32: onnx.ModelProto, convs: list[onnx.NodeProto]) -> onnx.ModelProto:
    """``qdq`` plus a float twin of every conv; each conv's and twin's output are graph outputs."""
    fp_init = {i.name: i for i in fp32.graph.initializer}
    fp_conv = {n.output[0]: n for n in fp32.graph.node if n.op_type == "Conv"}
    probe = copy_model(qdq)
    producer = {o: n for n in probe.graph.node for o in n.output}
    for conv in convs:
        ref = fp_conv.get(conv.output[0])
        if ref is None or ref.input[1] not in fp_init or len(ref.input) < 3 or ref.input[2] not in fp_init:
            raise QyoloError(f"bias correction: conv {conv.name!r} has no FP32 counterpart with constant weight and bias")
        out = conv.output[0]
        for src, suffix in ((ref.input[1], "_w"), (ref.input[2], "_b")):
            probe.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(fp_init[src]), out + TWIN + suffix))
        twin = helper.make_node("Conv", [_float_input(conv, producer), out + TWIN + "_w", out + TWIN + "_b"], [out + TWIN], name=conv.name + TWIN)
        twin.attribute.extend(conv.attribute)
        probe.graph.node.append(twin)
        probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in (out, out + TWIN))
    return probe


def bias_correct(qdq: onnx.ModelProto, fp32: onnx.ModelProto, feeds: Sequence[Feeds]) -> tuple[onnx.ModelProto, dict[str, float]]:
    """``qdq`` with every quantized conv's bias corrected on ``feeds``; also conv output -> mean |correction|."""
    if not feeds:
        raise QyoloError("bias correction needs at least one image")
    convs = _quantized_convs(qdq)
    session = make_session(_probe(qdq, fp32, convs).SerializeToString())
    names = [n for c in convs for n in (c.output[0], c.output[0] + TWIN)]
    means = dict.fromkeys(names, 0.0)
    for feed in progress(feeds, total=len(feeds), desc="bias correction", unit="img"):
        for name, value in zip(names, session.run(names, feed)):
            means[name] = means[name] + value.astype(np.float64).mean(axis=(0, *range(2, value.ndim))) / len(feeds)
    out = copy_model(qdq)
    inits = {i.name: i for i in out.graph.initializer}
    deltas: dict[str, float] = {}
    for conv in convs:
        delta = means[conv.output[0] + TWIN] - means[conv.output[0]]
        bias = inits[conv.input[2]]
        bias.CopyFrom(numpy_helper.from_array((numpy_helper.to_array(bias) + delta).astype(np.float32), bias.name))
        deltas[conv.output[0]] = float(np.abs(delta).mean())
    return out, deltas


@register(order=40)
class BiasCorrectionPass:
    name = "bias_correction"

    def enabled(self, config: QuantizeConfig) -> bool:
        return config.bias_correction

    def apply(self, result: QuantizeResult, fp32: onnx.ModelProto, ctx: PassContext) -> QuantizeResult:
        """``result`` with its biases corrected on the bias images; the report says on how many."""
        feeds = ctx.feeds(ctx.config.bias_images, ctx.config.bias_num_images)
        model, deltas = bias_correct(result.model, fp32, feeds)
        return with_report(model, {**result.report, "bias_correction": {"images": count_images(feeds), "convs": len(deltas)}})
