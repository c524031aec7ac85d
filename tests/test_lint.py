"""The TensorRT explicit-quantization lint: each rule caught on a broken model, our own output clean,
and ONNX Runtime's own QDQ output flagged for its int32 biases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from qdq_graphs import observed_scales, tiny_detector

from qyolo_trt.qdq import lint, quantize

FEEDS = {"images": np.random.default_rng(2).random((1, 3, 16, 16), dtype=np.float32)}


@pytest.fixture(scope="module")
def clean() -> onnx.ModelProto:
    fp32 = tiny_detector()
    return quantize(fp32, observed_scales(fp32, FEEDS)).model


def codes(model: onnx.ModelProto) -> set[tuple[str, str]]:
    return {(i.severity, i.code) for i in lint(model)}


def edited(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def set_init(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(value, name))


def test_own_output_is_clean(clean):
    assert lint(clean) == []


def test_concat_scale_mismatch(clean):
    m = edited(clean)
    set_init(m, "pool1_out_qscale", np.array(0.5, np.float32))
    assert codes(m) == {("error", "concat-scale")}
    assert [i.node for i in lint(m)] == ["cat"]


def test_nonzero_zero_point_and_bad_scale(clean):
    m = edited(clean)
    set_init(m, "cv2_act_qzero", np.array(3, np.int8))
    set_init(m, "cv1_act_qscale", np.array(0.0, np.float32))
    found = lint(m)
    assert {(i.code, i.node) for i in found} == {
        ("zero-point", "cv2_act_QuantizeLinear"), ("zero-point", "cv2_act_DequantizeLinear"),
        ("scale", "cv1_act_QuantizeLinear"), ("scale", "cv1_act_DequantizeLinear"),
    }


def test_per_tensor_weight_is_a_warning_and_wrong_axis_an_error(clean):
    m = edited(clean)
    set_init(m, "cv2.weight_wscale", np.array(0.01, np.float32))
    set_init(m, "cv2.weight_wzero", np.array(0, np.int8))
    assert codes(m) == {("warning", "weight-per-tensor")}
    dq = next(n for n in m.graph.node if n.name == "cv2.weight_DequantizeLinear")
    set_init(m, "cv2.weight_wscale", np.full(8, 0.01, np.float32))
    set_init(m, "cv2.weight_wzero", np.zeros(8, np.int8))
    dq.attribute[0].CopyFrom(helper.make_attribute("axis", 1))
    assert ("error", "weight-axis") in codes(m)


def test_qdq_inside_silu_and_dangling_q(clean):
    m = edited(clean)
    # put the conv -> Sigmoid edge through a new Q/DQ pair
    sig = next(n for n in m.graph.node if n.name == "cv1/Sigmoid")
    m.graph.node.extend([
        helper.make_node("QuantizeLinear", ["cv1_out", "cv1_act_qscale", "cv1_act_qzero"], ["cv1_q"], name="bad_q"),
        helper.make_node("DequantizeLinear", ["cv1_q", "cv1_act_qscale", "cv1_act_qzero"], ["cv1_dq"], name="bad_dq"),
        helper.make_node("QuantizeLinear", ["cv2_out", "cv1_act_qscale", "cv1_act_qzero"], ["dangling"], name="lonely_q"),
    ])
    sig.input[0] = "cv1_dq"
    found = {(i.code, i.node) for i in lint(m)}
    assert found == {("silu-qdq", "cv1/Mul"), ("dangling-q", "lonely_q")}


def test_onnxruntime_qdq_output_flags_int32_bias(tmp_path: Path):
    """ORT's quantize_static quantizes biases to int32 (TensorRT's parser rejects them) and uses uint8 activations."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([FEEDS])

        def get_next(self):
            return next(self.items, None)

    src, dst = tmp_path / "fp32.onnx", tmp_path / "ort.qdq.onnx"
    onnx.save(tiny_detector(), src)
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    found = codes(onnx.load(dst))
    assert ("error", "int32") in found and ("error", "zero-point") in found
