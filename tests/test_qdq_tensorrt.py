"""Acceptance: TensorRT-RTX (ahead-of-time, no GPU) parses and builds our QDQ models, and its detailed layer
report shows every quantized Conv reading INT8, no quantized Concat/MaxPool in a float layer, the head in float,
and the shifted-symmetric Sub fused away (no extra layers)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from qdq_graphs import fixed_scales, observed_scales

from qyolo_trt.calib.scales import ScalesFile
from qyolo_trt.data import ImageLoader
from qyolo_trt.qdq import quantize

pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed (pip install 'qyolo-trt[rtx]')")
from qyolo_trt.backends.tensorrt.builder import build_engine  # noqa: E402


def build(model: onnx.ModelProto, scales: ScalesFile, path: Path, mode: str = "symmetric"):
    result = quantize(model, scales, mode=mode)
    onnx.save(result.model, path)
    return result, build_engine(path, backend="tensorrt-rtx").report


def check_int8_placement(qdq: onnx.ModelProto, report) -> None:
    producer = {o: n.op_type for n in qdq.graph.node for o in n.output}
    quantized = {n.name: n.op_type for n in qdq.graph.node if n.input and n.op_type != "DequantizeLinear" and producer.get(n.input[0]) == "DequantizeLinear"}
    convs = {n for n, op in quantized.items() if op == "Conv"}
    reads_int8 = {n for layer in report.layers if layer.reads_int8 for n in layer.onnx_nodes}
    writes_float = {n for layer in report.layers if "Int8" not in layer.output_dtypes for n in layer.onnx_nodes}
    assert convs and convs <= reads_int8, sorted(convs - reads_int8)
    assert report.conv_int8 == len(convs)
    grouped = {n for n, op in quantized.items() if op in ("Concat", "MaxPool")}
    assert grouped and not grouped & writes_float, sorted(grouped & writes_float)  # fused into INT8 epilogues, or no-ops
    float_convs = {n.name for n in qdq.graph.node if n.op_type == "Conv"} - convs
    assert not float_convs & reads_int8


def test_yolov5n_symmetric_and_shifted_build_int8(yolov5n_onnx, bus_jpg, tmp_path):
    model = onnx.load(yolov5n_onnx)
    bus = next(iter(ImageLoader([bus_jpg], imgsz=(640, 640)))).images
    scales = observed_scales(model, {"images": bus})
    sym, sym_report = build(model, scales, tmp_path / "sym.onnx")
    check_int8_placement(sym.model, sym_report)
    assert sym_report.conv_total == 60 and sym_report.conv_int8 == 57
    shifted, shifted_report = build(model, scales, tmp_path / "shifted.onnx", mode="shifted")
    check_int8_placement(shifted.model, shifted_report)
    subs = {n.name for n in shifted.model.graph.node if n.op_type == "Sub" and n.name.endswith("_Sub")}
    assert len(subs) == len(shifted.report["shifted"]) == 24
    fused = {n for layer in shifted_report.layers if len(layer.onnx_nodes) > 1 for n in layer.onnx_nodes}
    assert subs <= fused and len(shifted_report.layers) <= len(sym_report.layers)


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n"])
def test_anchor_free_models_build_int8(structure_models, tmp_path, name):
    model = onnx.load(structure_models[name])
    _, report = build(model, fixed_scales(model), tmp_path / f"{name}.onnx")  # placement, not accuracy: one range for all
    qdq = onnx.load(tmp_path / f"{name}.onnx")
    check_int8_placement(qdq, report)
    assert report.conv_total - report.conv_int8 == 7  # the head: 3 box + 3 class branch ends and the DFL conv
