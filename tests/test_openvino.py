"""OpenVINO runner: f32 forced vs default precision, reported execution precision, int8 detection of QDQ convs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qyolo_trt.backends import get_runner
from qyolo_trt.backends.ort.runner import OrtRunner
from qyolo_trt.backends.openvino.runtime_model import conv_precisions, onnx_node_precisions
from qyolo_trt.errors import QyoloError

ov = pytest.importorskip("openvino")


def _conv_model(path: Path, qdq: bool) -> Path:
    """x[1,16,32,32] -> Conv 3x3 (32 out) -> y; with ``qdq``, Q/DQ on x (per tensor) and DQ on the int8 weights (per channel)."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(32, 16, 3, 3)).astype(np.float32)
    w_scale = np.abs(w).reshape(32, -1).max(axis=1) / 127
    nodes, inits = [], [numpy_helper.from_array(rng.normal(size=32).astype(np.float32), "b")]
    x, weight = "x", "w"
    if qdq:
        inits += [
            numpy_helper.from_array(np.round(w / w_scale[:, None, None, None]).astype(np.int8), "w_q"),
            numpy_helper.from_array(w_scale.astype(np.float32), "w_s"),
            numpy_helper.from_array(np.zeros(32, np.int8), "w_z"),
            numpy_helper.from_array(np.array(4 / 127, np.float32), "x_s"),
            numpy_helper.from_array(np.array(0, np.int8), "x_z"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"]),
            helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"]),
            helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w_dq"], axis=0),
        ]
        x, weight = "x_dq", "w_dq"
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    nodes.append(helper.make_node("Conv", [x, weight, "b"], ["y"], name="conv", pads=[1, 1, 1, 1]))
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 32, 32])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_f32_forced_and_default_on_real_yolov5n(yolov5n_onnx: Path) -> None:
    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    with OrtRunner(yolov5n_onnx) as ort_runner:
        ref = ort_runner.infer({"images": x})["output0"]
    default_type = "bf16" if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
    for precision, expected, tol in (("f32", "f32", 1e-2), ("default", default_type, None)):
        with get_runner("openvino", yolov5n_onnx, precision=precision, threads=1) as runner:
            assert runner.input_name == "images" and runner.output_names == ["output0"]
            out = runner.infer({"images": x})["output0"]
            info = runner.describe()
        assert info["execution_precision"] == expected
        assert info["conv_precisions"] == {expected: 60}
        assert out.shape == ref.shape == (1, 25200, 85)
        if tol:  # f32 forced reproduces ONNX Runtime's FP32 output (box coordinates in pixels)
            assert np.abs(out - ref).max() < tol * np.abs(ref).max()


def test_qdq_conv_runs_in_int8_float_conv_does_not(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(1, 16, 32, 32)).astype(np.float32)
    outputs = {}
    for qdq in (False, True):
        with get_runner("openvino", _conv_model(tmp_path / f"m{qdq}.onnx", qdq), precision="f32") as runner:
            outputs[qdq] = runner.infer({"x": x})["y"]
            runtime = runner.compiled.get_runtime_model()
        counts = conv_precisions(runtime)
        assert sum(counts.values()) == 1
        assert (set(counts) <= {"i8", "u8"}) == qdq, counts
        assert onnx_node_precisions(runtime)["conv"] == next(iter(counts))
    err = np.abs(outputs[True] - outputs[False])
    assert 0 < err.mean() < 0.05 * np.abs(outputs[False]).mean()  # int8 is close to, but not exactly, FP32


def test_outputs_are_copies_unless_shared(tmp_path: Path) -> None:
    model = _conv_model(tmp_path / "m.onnx", qdq=False)
    x1, x2 = np.ones((1, 16, 32, 32), np.float32), np.zeros((1, 16, 32, 32), np.float32)
    for share in (False, True):
        with get_runner("openvino", model, precision="f32", share_outputs=share) as runner:
            first = runner.infer({"x": x1})["y"]
            kept = first.copy()
            second = runner.infer({"x": x2})["y"]
        assert not np.array_equal(kept, second)
        assert np.array_equal(first, second if share else kept)  # a shared output is overwritten by the next run


def test_bad_inputs_are_clean_errors(tmp_path: Path) -> None:
    with pytest.raises(QyoloError, match="unknown OpenVINO precision"):
        get_runner("openvino", "m.onnx", precision="fp8")
    with pytest.raises(QyoloError, match="no such file"):
        get_runner("openvino", tmp_path / "missing.onnx").activate()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(QyoloError, match="OpenVINO cannot load it"):
        get_runner("openvino", junk).activate()
