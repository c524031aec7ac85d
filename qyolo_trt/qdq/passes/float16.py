"""A pass: the float parts of a QDQ (or FP32) model in FP16, so a strongly typed TensorRT build runs everything that is
not INT8 in half precision instead of FP32 (the difference between "INT8 slower than FP16" and a fast INT8 engine).

Every float32 tensor, weight, bias, Q/DQ scale and ``Constant`` becomes float16 (opset >= 19, where Q/DQ take float16
scales, so TensorRT still fuses each Q/DQ pair into INT8 kernels); ``Cast`` to float becomes ``Cast`` to float16. Resize's
``scales`` stay float32 (the ONNX type). Graph inputs and outputs keep their dtype (a ``Cast`` at each end) unless
``io_dtype="fp16"``. A Q/DQ scale below float16's smallest normal value (a near-constant tensor, common in random-init
models) is raised to it rather than flushed to zero: an activation pair then has a coarser grid that still covers the
tensor's whole range, and a weight's integers are re-rounded for the raised channel scales, so the dequantized weight is
what the scale change leaves of it.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ...defaults import FLOAT_DTYPES
from ...errors import QyoloError
from ...model import copy_model, raise_default_opset
from ..config import QuantizeConfig
from ..quantize import QuantizeResult
from .base import PassContext, register, with_report

MIN_OPSET = 19  # QuantizeLinear / DequantizeLinear with float16 scales
_FP32_INPUTS = {"Resize": (2,), "Upsample": (1,)}  # input slots whose ONNX type is float32 only
_F16_TINY = float(np.finfo(np.float16).tiny)


def _keep_fp32(graph: gs.Graph) -> set[int]:
    return {id(node.inputs[i]) for node in graph.nodes for i in _FP32_INPUTS.get(node.op, ()) if i < len(node.inputs)}


def _half(values: np.ndarray, name: str) -> np.ndarray:
    out = values.astype(np.float16)
    if not np.isfinite(out).all():
        raise QyoloError(f"{name}: values beyond float16's range (|x| > 65504); keep this model in fp32 (--float-dtype fp32)")
    return out


def _floor_scales(graph: gs.Graph) -> list[str]:
    """Raise every Q/DQ scale below float16's smallest normal value to it (re-rounding constant weight integers of a
    DequantizeLinear for the new channel scales); returns the names of the raised scales."""
    raised: dict[int, gs.Constant] = {}
    for node in graph.nodes:
        if node.op not in ("QuantizeLinear", "DequantizeLinear") or len(node.inputs) < 2:
            continue
        scale = node.inputs[1]
        if not isinstance(scale, gs.Constant) or not (np.abs(scale.values) < _F16_TINY).any():
            continue
        old = np.asarray(scale.values, dtype=np.float32)
        new = np.maximum(old, _F16_TINY).astype(np.float32)
        data = node.inputs[0]
        if node.op == "DequantizeLinear" and isinstance(data, gs.Constant):  # a weight: its integers follow the scale
            shape = [1] * data.values.ndim
            if old.ndim:
                shape[node.attrs.get("axis", 1)] = -1
            info = np.iinfo(data.values.dtype)
            requant = np.rint(data.values.astype(np.float64) * (old / new).reshape(shape))
            data.values = np.clip(requant, info.min, info.max).astype(data.values.dtype)
        raised[id(scale)] = scale
    for scale in raised.values():
        scale.values = np.maximum(np.asarray(scale.values, dtype=np.float32), _F16_TINY).astype(np.float32)
    return sorted(s.name for s in raised.values())


def to_float16(model: onnx.ModelProto, io_dtype: str = "fp32") -> tuple[onnx.ModelProto, list[str]]:
    """``model`` with its float32 parts in float16 (see the module docstring), and the Q/DQ scales raised to float16's
    smallest normal value; ``io_dtype`` "fp32" or "fp16"."""
    if io_dtype not in FLOAT_DTYPES:
        raise QyoloError(f"unknown io dtype {io_dtype!r}; choose from {', '.join(FLOAT_DTYPES)}")
    graph = gs.import_onnx(copy_model(model))
    keep = _keep_fp32(graph)
    raised = _floor_scales(graph)
    boundary = {id(t) for t in (*graph.inputs, *graph.outputs)} if io_dtype == "fp32" else set()
    for tensor in graph.tensors().values():
        if id(tensor) in keep:
            continue
        if isinstance(tensor, gs.Constant) and tensor.values.dtype == np.float32:
            tensor.values = _half(tensor.values, tensor.name)
        elif isinstance(tensor, gs.Variable) and tensor.dtype == np.float32 and id(tensor) not in boundary:
            tensor.dtype = np.float16
    for node in graph.nodes:
        if node.op == "Constant" and isinstance(node.attrs.get("value"), gs.Constant) and node.attrs["value"].values.dtype == np.float32:
            if not any(id(o) in keep for o in node.outputs):
                node.attrs["value"].values = _half(node.attrs["value"].values, node.name)
        if node.op == "Cast" and node.attrs.get("to") == onnx.TensorProto.FLOAT and not any(id(o) in keep for o in node.outputs):
            node.attrs["to"] = onnx.TensorProto.FLOAT16
    if io_dtype == "fp32":
        _cast_boundaries(graph)
    out = gs.export_onnx(graph.cleanup().toposort())
    raise_default_opset(out, MIN_OPSET)
    out.ir_version = max(out.ir_version, 9)  # opset 19 needs IR version 9
    del out.graph.value_info[:]  # stale float32 shapes; runtimes infer the types again
    return out, raised


@register(order=50)
class Float16Pass:
    name = "float16"

    def enabled(self, config: QuantizeConfig) -> bool:
        return config.float_dtype == "fp16"

    def apply(self, result: QuantizeResult, fp32: onnx.ModelProto, ctx: PassContext) -> QuantizeResult:
        model, raised = to_float16(result.model, ctx.config.io_dtype)
        report = {**result.report, "float_dtype": "fp16", "io_dtype": ctx.config.io_dtype}
        if raised:
            report["fp16_raised_scales"] = raised
        return with_report(model, report)


def _replace(tensors, old: gs.Tensor, new: gs.Tensor) -> None:
    for j, t in enumerate(tensors):
        if t is old:
            tensors[j] = new


def _cast_boundaries(graph: gs.Graph) -> None:
    """float32 graph inputs/outputs around the float16 body: a Cast after each input, before each output."""
    for inp in graph.inputs:
        if inp.dtype != np.float32:
            continue
        half = gs.Variable(f"{inp.name}_fp16", dtype=np.float16, shape=inp.shape)
        for consumer in list(inp.outputs):
            _replace(consumer.inputs, inp, half)
        graph.nodes.append(gs.Node("Cast", f"{inp.name}_to_fp16", attrs={"to": onnx.TensorProto.FLOAT16}, inputs=[inp], outputs=[half]))
    for out in graph.outputs:
        if out.dtype != np.float32:
            continue
        half = gs.Variable(f"{out.name}_fp16", dtype=np.float16, shape=out.shape)
        _replace(out.inputs[0].outputs, out, half)
        for consumer in list(out.outputs):
            _replace(consumer.inputs, out, half)
        graph.nodes.append(gs.Node("Cast", f"{out.name}_to_fp32", attrs={"to": onnx.TensorProto.FLOAT}, inputs=[half], outputs=[out]))
