"""Small hand-built YOLO-like graphs and observed scales for the QDQ tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qyolo_trt.calib.scales import ScalesFile, TensorRange
from qyolo_trt.model import model_hash

class GraphBuilder:
    """Append nodes to an ONNX graph: conv (+SiLU), add, concat, maxpool, resize, head. Weights come from the builder's
    own seeded generator, so a graph is the same whichever tests built graphs before it."""

    def __init__(self, channels: int = 3, size: int = 16, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, channels, size, size])

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def conv(self, name: str, x: str, cin: int, cout: int, k: int = 1, silu: bool = True, bias: bool = True) -> str:
        w = self.const(f"{name}.weight", self.rng.normal(0, 0.5, (cout, cin, k, k)).astype(np.float32))
        inputs = [x, w] + ([self.const(f"{name}.bias", self.rng.normal(0, 0.1, cout).astype(np.float32))] if bias else [])
        self.nodes.append(helper.make_node("Conv", inputs, [f"{name}_out"], name=f"{name}/Conv", kernel_shape=[k, k], pads=[k // 2] * 4))
        if not silu:
            return f"{name}_out"
        self.nodes.append(helper.make_node("Sigmoid", [f"{name}_out"], [f"{name}_sig"], name=f"{name}/Sigmoid"))
        self.nodes.append(helper.make_node("Mul", [f"{name}_out", f"{name}_sig"], [f"{name}_act"], name=f"{name}/Mul"))
        return f"{name}_act"

    def op(self, op: str, name: str, inputs: list[str], **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [f"{name}_out"], name=name, **attrs))
        return f"{name}_out"

    def model(self, output: str, opset: int = 17) -> onnx.ModelProto:
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, None, None, None])
        graph = helper.make_graph(self.nodes, "tiny", [self.input], [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        onnx.checker.check_model(model)
        return model


def tiny_detector(opset: int = 17) -> onnx.ModelProto:
    """stem 3x3 -> 1x1 -> residual Add -> SPPF-like MaxPool chain + Concat -> 1x1 -> 1x1 -> Resize -> 3x3 -> head 1x1 -> decode.

    Only ``cat_out`` and ``cv2_act`` feed nothing but 1x1 convs (the tensors shifted-symmetric mode shifts)."""
    b = GraphBuilder()
    a = b.conv("stem", "images", 3, 8, k=3)
    c1 = b.conv("cv1", a, 8, 8, k=1)
    r = b.op("Add", "res", [a, c1])
    p1 = b.op("MaxPool", "pool1", [r], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    p2 = b.op("MaxPool", "pool2", [p1], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    cat = b.op("Concat", "cat", [r, p1, p2], axis=1)
    c2 = b.conv("cv2", cat, 24, 8, k=1)
    c3 = b.conv("cv3", c2, 8, 8, k=1)
    up = b.op("Resize", "up", [c3, b.const("up.roi", np.zeros(0, np.float32)), b.const("up.scales", np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    c4 = b.conv("cv4", up, 8, 8, k=3)
    h = b.conv("head", c4, 8, 6, k=1, silu=False)
    sig = b.op("Sigmoid", "decode_sig", [h])
    dec = b.op("Mul", "decode_mul", [sig, b.const("decode.k", np.array(2.0, np.float32))])
    return b.model(dec, opset)


def tensor_values(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every float node output (and the inputs) of one ORT run."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outs = {o.name for o in probe.graph.output}
    names = [o for n in probe.graph.node if n.op_type not in ("Shape", "Constant") for o in n.output if o and o not in outs]
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    return {**feeds, **{k: v for k, v in values.items() if v.dtype == np.float32}}


def observed_scales(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> ScalesFile:
    """Max-calibrated ranges of every float tensor from one run (with UH-style lower/upper/shift fields)."""
    tensors = {}
    for name, v in tensor_values(model, feeds).items():
        lo, hi = float(min(v.min(), 0.0)), float(max(v.max(), 0.0))
        amax = max(abs(lo), hi)
        tensors[name] = TensorRange(
            scale=amax / 127, clip=amax, min=float(v.min()), max=float(v.max()),
            lower=lo, upper=hi, shift=(lo + hi) / 2, shift_scale=(hi - lo) / 254,
        )
    return ScalesFile(model_hash(model), "max", 1, tensors)


def lowbit_scales(model: onnx.ModelProto, feeds: dict[str, np.ndarray], bits: int) -> ScalesFile:
    """``observed_scales`` on the symmetric ``bits`` grid (scale = clip / (2**(bits-1) - 1)), recorded as calibrated for it."""
    base = observed_scales(model, feeds)
    qmax = 2 ** (bits - 1) - 1
    tensors = {k: dataclasses.replace(r, scale=r.clip / qmax, shift_scale=None, shift=None) for k, r in base.tensors.items()}
    return dataclasses.replace(base, tensors=tensors, params={"bits": bits})


def fixed_scales(model: onnx.ModelProto, amax: float = 4.0) -> ScalesFile:
    """One post-SiLU-like range for every tensor: enough to test placement on random-weight structure models."""
    names = {t for n in model.graph.node for t in [*n.input, *n.output] if t} | {i.name for i in model.graph.input}
    lo = -0.2785
    rng = TensorRange(scale=amax / 127, clip=amax, min=lo, max=amax, lower=lo, upper=amax, shift=(lo + amax) / 2, shift_scale=(amax - lo) / 254)
    return ScalesFile(model_hash(model), "fixed", 0, dict.fromkeys(names, rng))


SIZE = 32  # anchor-free head with strides 8/16/32: 16 + 4 + 1 = 21 anchors
ANCHORS = 21


def fragile_detector() -> onnx.ModelProto:
    """stem 3x3 -> cv1 -> cv2 -> cv3 -> head 1x1 -> [1, 6, 21]. cv1's channel 0 is a huge outlier (x200, bias
    +500) that cv2 reads with tiny weights: quantizing cv2's input per tensor wipes out its other 7 channels."""
    b = GraphBuilder(size=SIZE)
    x = b.conv("stem", "images", 3, 8, k=3)
    for name in ("cv1", "cv2", "cv3"):
        x = b.conv(name, x, 8, 8, k=1)
    h = b.conv("head", x, 8, 6, k=1, silu=False)
    flat = b.op("Reshape", "flatten", [h, b.const("flatten.shape", np.array([1, 6, SIZE * SIZE], np.int64))])
    idx = [b.const(f"slice.{k}", np.array([v], np.int64)) for k, v in (("start", 0), ("end", ANCHORS), ("axis", 2))]
    out = b.op("Slice", "anchors", [flat, *idx])
    model = b.model(out)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [1, 6, ANCHORS]))
    inits = {t.name: t for t in model.graph.initializer}

    def scale(name: str, fn) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(fn(numpy_helper.to_array(inits[name]).copy()), name))

    scale("cv1.weight", lambda w: (w.__setitem__(0, w[0] * 200), w)[1])
    scale("cv1.bias", lambda v: (v.__setitem__(0, 500.0), v)[1])
    scale("cv2.weight", lambda w: (w.__setitem__((slice(None), 0), w[:, 0] * 1e-3), w)[1])
    return model
