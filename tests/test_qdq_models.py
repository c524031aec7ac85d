"""The QDQ rewrite on the real yolov5n and the Ultralytics structure models (v8n, 11n, v5nu):
placement counts per op type, lint clean, runs in ONNX Runtime and OpenVINO, rewrite < 1 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from qdq_graphs import fixed_scales, observed_scales

from qyolo_trt.backends.ort.session import make_session
from qyolo_trt.data import ImageLoader
from qyolo_trt.qdq import head_conv_outputs, lint, quantize

# quantized ops by type with the head kept float: every Conv but the head's (3 anchor-based 1x1 convs;
# anchor-free: 3 box + 3 class branch outputs + the DFL conv), residual Adds only, every non-head Concat
EXPECTED = {
    "yolov5n": ({"Add": 7, "Concat": 13, "Conv": 57, "MaxPool": 3, "Resize": 2}, 3, 60),
    "yolov8n": ({"Add": 6, "Concat": 13, "Conv": 57, "MaxPool": 3, "Resize": 2}, 7, 64),
    "yolo11n": ({"Add": 14, "Concat": 17, "Conv": 81, "MatMul": 2, "MaxPool": 3, "Resize": 2}, 7, 88),
    "yolov5nu": ({"Add": 7, "Concat": 13, "Conv": 69, "MaxPool": 3, "Resize": 2}, 7, 76),
}


def tensor_names(model: onnx.ModelProto) -> set[str]:
    return {t for n in model.graph.node for t in [*n.input, *n.output] if t}


@pytest.fixture(scope="module")
def models(yolov5n_onnx, structure_models) -> dict[str, Path]:
    return {"yolov5n": yolov5n_onnx, **structure_models}


@pytest.fixture(scope="module")
def bus(bus_jpg) -> np.ndarray:
    return next(iter(ImageLoader([bus_jpg], imgsz=(640, 640)))).images


@pytest.fixture(scope="module")
def prepared(models, bus):
    """name -> (FP32 model, scales): max observed on bus.jpg for the real model, one fixed range for random weights."""
    out = {}
    for name, path in models.items():
        model = onnx.load(path)
        out[name] = (model, observed_scales(model, {"images": bus}) if name == "yolov5n" else fixed_scales(model))
    return out


@pytest.mark.parametrize("name", list(EXPECTED))
def test_placement_counts_and_lint(prepared, name):
    """(The rewrite's speed is a benchmark's business, not a timed test's: it takes 0.06-0.19 s per model.)"""
    model, scales = prepared[name]
    counts, head_convs, total_convs = EXPECTED[name]
    result = quantize(model, scales)
    assert result.report["quantized"] == counts
    head_float = [e for e in result.report["float_nodes"] if e["op"] == "Conv"]
    assert len(head_float) == head_convs == total_convs - counts["Conv"] and {e["reason"] for e in head_float} == {"head"}
    assert lint(result.model) == []
    shifted = quantize(model, scales, mode="shifted")
    assert shifted.report["shifted"] and lint(shifted.model) == []
    assert tensor_names(model) <= tensor_names(shifted.model)  # FP32 and QDQ intermediates compare by name


def test_yolov5n_head_is_the_three_detect_convs(prepared):
    assert head_conv_outputs(prepared["yolov5n"][0]) == [f"/model.24/m.{i}/Conv_output_0" for i in range(3)]


def test_anchor_free_head_is_found_by_structure(prepared):
    for name in ("yolov8n", "yolo11n", "yolov5nu"):
        outs = head_conv_outputs(prepared[name][0])
        assert len(outs) == 6 and all("/cv2." in o or "/cv3." in o for o in outs)  # box and class branch ends, not the DFL conv


OV_SHIFTED = pytest.mark.xfail(strict=True, reason="known: OpenVINO 2026.4 CPU runs the shifted yolov5n at 14.8 dB output SQNR "
                                "(ONNX Runtime: 39.3 dB, OpenVINO symmetric: 21.3 dB); open, see README 'CPU targets'")


@pytest.mark.parametrize(
    ("name", "mode"),
    [("yolov5n", "symmetric"), pytest.param("yolov5n", "shifted", marks=OV_SHIFTED), ("yolov5n", "asymmetric"),
     ("yolov8n", "symmetric"), ("yolo11n", "shifted")],
)
def test_runs_in_onnxruntime_and_openvino(prepared, bus, tmp_path, name, mode):
    ov = pytest.importorskip("openvino")
    model, scales = prepared[name]
    path = tmp_path / f"{name}.{mode}.onnx"
    onnx.save(quantize(model, scales, mode=mode).model, path)
    out_ort = make_session(str(path)).run(None, {"images": bus})[0]
    out_ov = ov.Core().compile_model(str(path), "CPU")(bus)[0]
    assert out_ort.shape == out_ov.shape == tuple(d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim)
    assert np.isfinite(out_ort).all() and np.isfinite(out_ov).all()
    if name == "yolov5n":  # real weights, max-calibrated on this very image: the decoded output stays close to FP32
        ref = make_session(model.SerializeToString()).run(None, {"images": bus})[0]
        sqnr = lambda out: 10 * np.log10((ref**2).sum() / ((ref - out) ** 2).sum())  # noqa: E731
        assert sqnr(out_ort) > 20 and sqnr(out_ov) > 20, (sqnr(out_ort), sqnr(out_ov))
