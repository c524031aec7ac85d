"""Lint a QDQ ONNX model (ours or another tool's) against a target's rules: TensorRT's explicit-quantization rules, of
which the CPU runtimes (OpenVINO, ONNX Runtime) share the format checks but not the TensorRT-only ones."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..defaults import DEFAULT_TARGET, TARGETS
from ..errors import QyoloError
from .graph_ops import constant_values
from .rules.conv import weight_axis
from .rules.profiles import PROFILES

WEIGHTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
CARRIED = frozenset().union(*(p.carried for p in PROFILES.values()))  # outputs on their inputs' grid (shared scale)
INT8 = onnx.TensorProto.INT8
SIGNED_ZP = ("int8", "int4")  # symmetric zero points (int4: a low-bit model's weights, ml_dtypes' int4)
# issue codes that only TensorRT's explicit quantization makes errors: the CPU runtimes take zero points (uint8),
# int32 biases and Q/DQ inside a SiLU (ONNX Runtime needs them there to form QLinearConv)
TENSORRT_ONLY = frozenset({"zero-point", "int32", "silu-qdq"})


@dataclass(frozen=True)
class LintIssue:
    severity: Literal["error", "warning"]
    code: str
    node: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lint(model: onnx.ModelProto, target: str = DEFAULT_TARGET) -> list[LintIssue]:
    """Every violation in ``model`` of ``target``'s rules (empty list: clean for that target)."""
    if target not in TARGETS:
        raise QyoloError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    issues = _issues(gs.import_onnx(model))
    return issues if target == DEFAULT_TARGET else [i for i in issues if i.code not in TENSORRT_ONLY]


def _issues(graph: gs.Graph) -> list[LintIssue]:
    """Every TensorRT rule violation in ``graph``."""
    issues: list[LintIssue] = []
    if graph.opset < 13:
        issues.append(LintIssue("error", "opset", "", f"opset {graph.opset} < 13: no per-channel QuantizeLinear"))
    for node in graph.nodes:
        if node.op in ("QuantizeLinear", "DequantizeLinear"):
            issues += _check_qparams(node)
        if node.op == "QuantizeLinear" and (not node.outputs[0].outputs or any(c.op != "DequantizeLinear" for c in node.outputs[0].outputs)):
            issues.append(LintIssue("error", "dangling-q", node.name, "QuantizeLinear not followed (only) by DequantizeLinear"))
        if node.op == "DequantizeLinear":
            issues += _check_weight_dq(node)
        if node.op == "Concat":
            issues += _check_concat(node)
        if node.op == "Mul":
            issues += _check_silu(node)
    return issues


def _qparams(node: gs.Node) -> tuple[np.ndarray | None, np.ndarray | None]:
    scale = constant_values(node.inputs[1])
    zp = constant_values(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
    return scale, zp


def _check_qparams(node: gs.Node) -> list[LintIssue]:
    scale, zp = _qparams(node)
    issues = []
    if scale is None or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        issues.append(LintIssue("error", "scale", node.name, "scale must be a constant, finite and positive"))
    if zp is None:
        if node.op == "QuantizeLinear" and node.attrs.get("output_dtype", 0) != INT8:
            issues.append(LintIssue("error", "zero-point", node.name, "no zero point: output is uint8 (TensorRT needs int8, zero point 0)"))
    elif zp.dtype == np.int32:
        issues.append(LintIssue("error", "int32", node.name, "int32-quantized tensor (e.g. a bias): TensorRT's parser rejects it"))
    elif zp.dtype.name not in SIGNED_ZP or np.any(zp != 0):
        issues.append(LintIssue("error", "zero-point", node.name, f"zero point must be int8 (or int4) 0 (found {zp.dtype}, values {np.unique(zp)[:4].tolist()})"))
    return issues


def _check_weight_dq(node: gs.Node) -> list[LintIssue]:
    """A DQ of a constant weight feeding input 1 of Conv/Gemm/MatMul: symmetric per output channel."""
    weight = constant_values(node.inputs[0])
    users = [c for c in node.outputs[0].outputs if c.op in WEIGHTED and len(c.inputs) > 1 and c.inputs[1] is node.outputs[0]]
    if weight is None or not users:
        return []
    scale, _ = _qparams(node)
    axis = weight_axis(users[0], weight.ndim)
    if scale is None or scale.size == 1:
        return [LintIssue("warning", "weight-per-tensor", node.name, "weight is quantized per tensor, not per output channel")]
    if node.attrs.get("axis", 1) % weight.ndim != axis or scale.size != weight.shape[axis]:
        return [LintIssue("error", "weight-axis", node.name, f"per-channel weight scales must run along axis {axis} ({weight.shape[axis]} channels)")]
    return []


def _dq_scale(tensor: gs.Tensor) -> np.ndarray | None:
    """The scale of the DequantizeLinear producing ``tensor`` (None: not quantized), also through the Clip that saturates
    a low-bit activation to its grid and through a Concat / MaxPool whose quantized inputs share one scale (a target
    that carries their quantization through them has no Q/DQ after them)."""
    if len(tensor.inputs) != 1:
        return None
    producer = tensor.inputs[0]
    if producer.op == "DequantizeLinear":
        return _qparams(producer)[0]
    if producer.op == "Clip" and producer.inputs[0].inputs and producer.inputs[0].inputs[0].op == "DequantizeLinear":
        return _dq_scale(producer.inputs[0])
    if producer.op in CARRIED and producer.inputs:
        scales = [_dq_scale(t) for t in producer.inputs[:1 if producer.op == "MaxPool" else None]]
        if all(s is not None and s.shape == scales[0].shape and np.allclose(s, scales[0], rtol=1e-6, atol=0) for s in scales):
            return scales[0]
    return None


def _check_concat(node: gs.Node) -> list[LintIssue]:
    ins = [_dq_scale(t) for t in node.inputs]
    outs = [_qparams(c)[0] for c in node.outputs[0].outputs if c.op == "QuantizeLinear"]
    scales = [s for s in ins + outs if s is not None]
    if not scales:
        return []
    if any(s is None for s in ins):
        return [LintIssue("error", "concat-scale", node.name, "some Concat inputs are quantized and some are not")]
    if any(s.shape != scales[0].shape or not np.allclose(s, scales[0], rtol=1e-6, atol=0) for s in scales):
        values = sorted({float(np.ravel(s)[0]) for s in scales})
        return [LintIssue("error", "concat-scale", node.name, f"Concat inputs and output have different scales {values[:4]}")]
    return []


def _strip_qdq(tensor: gs.Tensor) -> tuple[gs.Tensor, bool]:
    """The tensor before a Q -> DQ pair (and whether there was one)."""
    if len(tensor.inputs) == 1 and tensor.inputs[0].op == "DequantizeLinear":
        q = tensor.inputs[0].inputs[0]
        if len(q.inputs) == 1 and q.inputs[0].op == "QuantizeLinear":
            return q.inputs[0].inputs[0], True
    return tensor, False


def _check_silu(mul: gs.Node) -> list[LintIssue]:
    """SiLU = Mul(x, Sigmoid(x)): no Q/DQ on x's way into either, nor on the sigmoid's output."""
    if len(mul.inputs) != 2:
        return []
    (a, qa), (b, qb) = (_strip_qdq(t) for t in mul.inputs)
    for sig_out, other, q_other, q_sig in ((a, b, qb, qa), (b, a, qa, qb)):
        sig = sig_out.inputs[0] if len(sig_out.inputs) == 1 else None
        if sig is None or sig.op != "Sigmoid":
            continue
        x, qx = _strip_qdq(sig.inputs[0])
        if x is other and (qx or q_other or q_sig):
            return [LintIssue("error", "silu-qdq", mul.name, "Q/DQ inside a SiLU (Conv -> Sigmoid/Mul): TensorRT cannot fuse Conv+SiLU")]
    return []
