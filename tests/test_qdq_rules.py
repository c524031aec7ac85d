"""Placement rules pinned on a small hand-built YOLO-like graph (tests/qdq_graphs.py)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from qdq_graphs import observed_scales, tiny_detector

from qyolo_trt.calib.scales import TensorRange
from qyolo_trt.qdq import REPORT_KEY, head_conv_outputs, lint, quantize

FEEDS = {"images": np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)}


@pytest.fixture(scope="module")
def fp32() -> onnx.ModelProto:
    return tiny_detector()


@pytest.fixture(scope="module")
def scales(fp32):
    return observed_scales(fp32, FEEDS)


class View:
    """Lookups over an ONNX graph: producer / consumers by tensor name, constants."""

    def __init__(self, model: onnx.ModelProto):
        self.nodes = list(model.graph.node)
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.producer = {o: n for n in self.nodes for o in n.output}

    def node(self, name: str) -> onnx.NodeProto:
        return next(n for n in self.nodes if n.name == name)

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.nodes if tensor in n.input]

    def dq_scale(self, tensor: str) -> float | None:
        """Scale of the DequantizeLinear producing ``tensor`` (None when not quantized)."""
        p = self.producer.get(tensor)
        return float(self.inits[p.input[1]]) if p is not None and p.op_type == "DequantizeLinear" else None

    def source(self, tensor: str) -> str:
        """The float tensor behind a DequantizeLinear <- QuantizeLinear pair."""
        return self.producer[self.producer[tensor].input[0]].input[0]


def run(model: onnx.ModelProto) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, FEEDS)[0]


def test_weights_per_channel_int8_and_bias_float(fp32, scales):
    q = View(quantize(fp32, scales).model)
    conv = q.node("cv2/Conv")
    dq = q.producer[conv.input[1]]
    assert conv.input[1] == "cv2.weight" and dq.op_type == "DequantizeLinear"
    w = numpy_helper.to_array(next(i for i in fp32.graph.initializer if i.name == "cv2.weight"))
    w8, s, zp = (q.inits[n] for n in dq.input)
    assert w8.dtype == np.int8 and s.shape == (8,) and not zp.any() and {a.name: a.i for a in dq.attribute}["axis"] == 0
    np.testing.assert_allclose(s, np.abs(w).max(axis=(1, 2, 3)) / 127, rtol=1e-6)
    assert np.abs(w8).max() == 127 and np.abs(w8.astype(np.float32) * s[:, None, None, None] - w).max() <= s.max() / 2 + 1e-7
    assert conv.input[2] == "cv2.bias" and q.inits["cv2.bias"].dtype == np.float32


def test_conv_input_quantized_and_silu_untouched(fp32, scales):
    q = View(quantize(fp32, scales).model)
    assert q.source(q.node("cv2/Conv").input[0]) == "cat_out"
    for name in ("cv1", "cv2", "cv3"):
        assert {n.op_type for n in q.consumers(f"{name}_out")} == {"Sigmoid", "Mul"}
        assert q.node(f"{name}/Mul").input == [f"{name}_out", f"{name}_sig"]


def test_residual_add_quantizes_both_inputs(fp32, scales):
    q = View(quantize(fp32, scales).model)
    add = q.node("res")
    assert [q.source(i) for i in add.input] == ["stem_act", "cv1_act"]
    np.testing.assert_allclose([q.dq_scale(i) for i in add.input], [scales.tensors[n].scale for n in ("stem_act", "cv1_act")], rtol=1e-6)
    assert q.dq_scale(q.node("decode_mul").input[0]) is None  # a Mul/Add with a constant is decode, not residual


def test_concat_maxpool_group_shares_the_output_scale(fp32, scales):
    cat = replace(scales.tensors["cat_out"], scale=0.123)  # max calibration gives the inputs' max: make it differ
    q = View(quantize(fp32, replace(scales, tensors={**scales.tensors, "cat_out": cat})).model)
    expected = 0.123
    group = [*q.node("cat").input, q.node("pool1").input[0], q.node("pool2").input[0], q.node("cv2/Conv").input[0]]
    np.testing.assert_allclose([q.dq_scale(t) for t in group], expected, rtol=1e-6)
    resize = q.node("up")
    np.testing.assert_allclose(q.dq_scale(resize.input[0]), scales.tensors["up_out"].scale, rtol=1e-6)
    np.testing.assert_allclose(q.dq_scale(q.node("cv4/Conv").input[0]), scales.tensors["up_out"].scale, rtol=1e-6)


def test_head_found_structurally_and_kept_float(fp32, scales):
    assert head_conv_outputs(fp32) == ["head_out"]
    result = quantize(fp32, scales)
    q = View(result.model)
    head = q.node("head/Conv")
    assert head.input[:2] == ["cv4_act", "head.weight"] and q.producer.get("head.weight") is None
    assert result.report["float_nodes"] == [{"node": "head/Conv", "op": "Conv", "reason": "head"}]
    assert result.report["quantized"] == {"Add": 1, "Concat": 1, "Conv": 5, "MaxPool": 2, "Resize": 1}


def test_keep_float_options_and_exclude(fp32, scales):
    none = quantize(fp32, scales, keep_float=())
    assert none.report["quantized"]["Conv"] == 6 and none.report["float_nodes"] == []
    first = quantize(fp32, scales, keep_float=("first-conv", "head"), exclude=[r"^cv[23]/"])
    reasons = {e["node"]: e["reason"] for e in first.report["float_nodes"]}
    assert reasons == {"stem/Conv": "first-conv", "head/Conv": "head", "cv2/Conv": "exclude:^cv[23]/", "cv3/Conv": "exclude:^cv[23]/"}
    q = View(first.model)
    assert q.node("stem/Conv").input[0] == "images" and q.producer.get("images_dequantized") is None
    assert json.loads(dict((p.key, p.value) for p in first.model.metadata_props)[REPORT_KEY]) == first.report


def test_original_tensor_names_kept_and_output_close(fp32, scales):
    result = quantize(fp32, scales)
    names = lambda m: {t for n in m.graph.node for t in [*n.input, *n.output] if t} | {i.name for i in m.graph.initializer}  # noqa: E731
    assert names(fp32) <= names(result.model)
    assert lint(result.model) == []
    ref, out = run(fp32), run(result.model)
    assert 10 * np.log10((ref**2).sum() / ((ref - out) ** 2).sum()) > 20  # 8-bit max calibration on its own data


def strip_qdq(qdq: onnx.ModelProto) -> onnx.ModelProto:
    """Remove every activation Q -> DQ pair (weights stay int8 -> DQ)."""
    producer = {o: n for n in qdq.graph.node for o in n.output}
    pairs = {n.output[0]: producer[n.input[0]] for n in qdq.graph.node
             if n.op_type == "DequantizeLinear" and n.input[0] in producer and producer[n.input[0]].op_type == "QuantizeLinear"}
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    keep = [n for n in out.graph.node if n.output[0] not in pairs and not any(q.output[0] in n.output for q in pairs.values())]
    for n in keep:
        n.input[:] = [pairs[i].input[0] if i in pairs else i for i in n.input]
    del out.graph.node[:]
    out.graph.node.extend(keep)
    return out


def test_shifted_mode_is_exact_without_activation_quantization(fp32, scales):
    assert quantize(fp32, scales, mode="shifted").report["shifted"] == ["cat_out", "cv2_act"]  # feed nothing but 1x1 convs
    result = quantize(fp32, scales, mode="shifted", shift_padded=True)  # quantize --shift-padded
    # ... and up_out, read only by the padded 3x3 cv4, whose padding moves into a Pad (not images: the stem's input)
    assert result.report["shifted"] == ["cat_out", "cv2_act", "up_out"]
    q = View(result.model)
    sub = q.producer[q.source(q.node("cv3/Conv").input[0])]
    assert sub.op_type == "Sub" and float(q.inits[sub.input[1]]) == pytest.approx(scales.tensors["cv2_act"].shift)
    np.testing.assert_allclose(q.dq_scale(q.node("cv3/Conv").input[0]), scales.tensors["cv2_act"].shift_scale, rtol=1e-6)
    w_engine = q.inits["cv3.weight_int8"] * q.inits["cv3.weight_wscale"][:, None, None, None]  # what the engine multiplies by
    b = numpy_helper.to_array(next(i for i in fp32.graph.initializer if i.name == "cv3.bias"))
    np.testing.assert_allclose(q.inits[q.node("cv3/Conv").input[2]], b + scales.tensors["cv2_act"].shift * w_engine.sum(axis=(1, 2, 3)), rtol=1e-5, atol=1e-5)
    assert lint(result.model) == []
    # with activation Q/DQ removed, shift + fold changes nothing: shifted == symmetric (same int8 weights)
    symmetric = strip_qdq(quantize(fp32, scales).model)
    np.testing.assert_allclose(run(strip_qdq(result.model)), run(symmetric), rtol=1e-4, atol=1e-5)
    assert sum(n.op_type == "Sub" for n in strip_qdq(result.model).graph.node) == 3
    cv4 = q.node("cv4/Conv")
    sub = q.producer[q.source(cv4.input[0])]
    pad = q.producer[sub.input[0]]
    assert (pad.op_type, pad.input[0], list(q.inits[pad.input[1]])) == ("Pad", "up_out", [0, 0, 1, 1, 0, 0, 1, 1])
    assert list(next(a for a in cv4.attribute if a.name == "pads").ints) == [0, 0, 0, 0]


def test_asymmetric_mode_uses_uint8_zero_points(fp32, scales):
    q = View(quantize(fp32, scales, mode="asymmetric").model)
    dq = q.producer[q.node("cv3/Conv").input[0]]
    scale, zp = scales.tensors["cv2_act"].asymmetric()
    assert q.inits[dq.input[2]].dtype == np.uint8 and int(q.inits[dq.input[2]]) == zp > 0
    assert float(q.inits[dq.input[1]]) == pytest.approx(scale)
    assert q.inits[q.producer["cv3.weight"].input[0]].dtype == np.int8  # weights stay symmetric int8


def test_opset_raised_to_13(scales):
    low = tiny_detector(opset=11)
    scales.model_hash = ""  # a scales file without a hash is not checked
    result = quantize(low, scales)
    assert result.report["opset"] == 13 and result.model.opset_import[0].version == 13
    run(result.model)


def test_degenerate_and_missing_tensors(fp32, scales):
    from qyolo_trt.errors import QyoloError

    tensors = {k: v for k, v in scales.tensors.items() if k != "cat_out"}
    tensors["cv2_act"] = TensorRange(scale=0.0, clip=0.0, min=0.0, max=0.0, warning="constant")
    broken = type(scales)("", "max", 1, tensors)
    with pytest.raises(QyoloError, match=r"no scale for 1 tensor\(s\): cat_out; degenerate scale for 1 tensor\(s\): cv2_act"):
        quantize(fp32, broken)
    result = quantize(fp32, broken, allow_missing=True)
    reasons = {e["node"]: e["reason"] for e in result.report["float_nodes"]}
    assert reasons["cat"] == "missing scale: cat_out" and reasons["cv3/Conv"] == "missing scale: cv2_act"
    assert {"pool1", "pool2", "cv2/Conv"} <= set(reasons) and result.report["missing"] == ["cat_out", "cv2_act"]
    assert result.report["quantized"] == {"Add": 1, "Conv": 3, "Resize": 1}  # stem, cv1, cv4
    assert lint(result.model) == []


def test_bad_arguments(fp32, scales):
    from qyolo_trt.errors import QyoloError

    with pytest.raises(QyoloError, match="not this model"):
        quantize(fp32, type(scales)("0" * 64, "uh", 1, scales.tensors))
    with pytest.raises(QyoloError, match="unknown mode"):
        quantize(fp32, scales, mode="int4")
    with pytest.raises(QyoloError, match="keep-float"):
        quantize(fp32, scales, keep_float=("neck",))
    with pytest.raises(QyoloError, match="regex"):
        quantize(fp32, scales, exclude=["(["])
