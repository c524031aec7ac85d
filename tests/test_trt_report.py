"""Layer-report parsing (builder log and inspector JSON) and GPU target handling, on known inputs."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from qyolo_trt.backends.tensorrt.builder import build_engine
from qyolo_trt.backends.tensorrt.gpus import parse_targets, rtx_groups, to_cc
from qyolo_trt.backends.tensorrt.report import EngineReport, canonical_dtype, make_report, parse_inspector_json, parse_layer_log
from qyolo_trt.backends.tensorrt.sidecar import summary_text, traffic_text
from qyolo_trt.errors import QyoloError
from trt_doubles import install_doubles
from trt_doubles.tiny import tiny_model

REAL_LOG = json.loads((Path(__file__).parent / "trt_doubles" / "rtx_build_log.json").read_text())
TINY_OPS = {n.name: n.op_type for n in tiny_model().graph.node}


def _t(name: str, dtype: str) -> str:
    return f"{{ Name: {name}, Dimensions: [1,16,320,320], Strides: [1638400,1,5120,16], Datatype: {dtype}, Format: (NHWC) Channel major format }}"


# the exact shape of TensorRT-RTX 1.7's DETAILED layer lines (one log message, several layers)
RTX_LOG = "\n".join([
    "Layers:",
    f"Name: __myl_Quant_myl0_0, LayerType: kgen, Inputs: [ {_t('images', 'Float')}], Constants: [ {_t('w', 'Int8')}], "
    f"Outputs: [ {_t('q0', 'Int8')}], TacticName: __myl_Quant_0x1, StreamId: 0, "
    "Metadata: [ONNX Layer: images_QuantizeLinear][ONNX Layer: /model.0/conv/Conv]",
    f"Name: /model.0/conv/Conv_myl0_1, LayerType: correlation, Inputs: [ {_t('q0', 'Int8')}], Constants: [], "
    f"Outputs: [ {_t('c0', 'Float')}], TacticName: __myelin_CASK_STUB, StreamId: 0, "
    "Metadata: [ONNX Layer: /model.0/conv/Conv][ONNX Layer: images_DequantizeLinear]",
    f"Name: /head/Conv_myl0_2, LayerType: correlation, Inputs: [ {_t('c0', 'Float')}], Constants: [], "
    f"Outputs: [ {_t('h0', 'Float')}], TacticName: __myelin_CASK_STUB, StreamId: 2, Metadata: [ONNX Layer: /head/Conv]",
    "Name: __mye1_myl0_3, LayerType: signal, Inputs: [], Constants: [], Outputs: [], TacticName: , StreamId: 2, EventId: 22, Metadata: ",
    f"Name: /head/Conv_myl0_2, LayerType: correlation, Inputs: [ {_t('c0', 'Float')}], Constants: [], "
    f"Outputs: [ {_t('h0', 'Float')}], TacticName: __myelin_CASK_STUB, StreamId: 2, Metadata: [ONNX Layer: /head/Conv]",
])
OPS = {"images_QuantizeLinear": "QuantizeLinear", "images_DequantizeLinear": "DequantizeLinear",
       "/model.0/conv/Conv": "Conv", "/head/Conv": "Conv", "/head/Sigmoid": "Sigmoid"}


def test_builder_log_layers_dtypes_and_fused_nodes():
    layers = parse_layer_log(["Engine generation completed", RTX_LOG])
    assert [layer.name for layer in layers] == ["__myl_Quant_myl0_0", "/model.0/conv/Conv_myl0_1", "/head/Conv_myl0_2", "__mye1_myl0_3"]
    quant, conv, head, signal = layers
    assert quant.input_dtypes == ("Float",) and quant.output_dtypes == ("Int8",)  # constants are not activations
    assert conv.type == "correlation" and conv.reads_int8 and conv.onnx_nodes == ("/model.0/conv/Conv", "images_DequantizeLinear")
    assert not head.reads_int8 and signal.onnx_nodes == ()


def test_report_counts_int8_convs_and_float_nodes():
    report = make_report(parse_layer_log([RTX_LOG]), OPS)
    assert (report.conv_int8, report.conv_total) == (1, 2)
    assert report.float_convs == ["/head/Conv"]
    assert report.float_nodes == ["/head/Conv"]  # Q/DQ never listed; /head/Sigmoid is in no layer
    assert report.layers_by_type == {"correlation": 2, "kgen": 1, "signal": 1}
    again = type(report).from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.to_dict() == report.to_dict()


def test_real_rtx_log_shapes_and_activation_bytes():
    """TensorRT-RTX 1.7's own log of the tiny model: per-layer output shapes, and bytes = elements x dtype size."""
    layers = parse_layer_log(REAL_LOG["static"])
    assert [(layer.type, layer.output_dtypes, layer.output_shapes) for layer in layers] == [
        ("kgen", ("Int8",), ((1, 4, 8, 8),)),  # the quantize kernel pads 3 input channels to 4
        ("correlation", ("Float",), ((1, 4, 8, 8),)),  # the INT8 conv writes FP32
        ("kgen", ("Float",), ((1, 4, 8, 8),)),
        ("correlation", ("Float",), ((1, 2, 8, 8),)),
        ("kgen", ("Float",), ((1, 2, 8, 8),)),
    ]
    assert layers[0].onnx_nodes == ("x_QuantizeLinear", "conv1", "x_DequantizeLinear", "w1_DequantizeLinear")  # \x1f-separated
    report = make_report(layers, TINY_OPS)
    assert report.activation_bytes_by_dtype == {"Float": 4 * (256 + 256 + 128 + 128), "Int8": 256}
    assert report.activation_bytes == 3328 and (report.conv_int8, report.float_convs) == (1, ["conv2"])


def test_dynamic_batch_counts_per_image():
    """A dynamic batch is -1 in the log: it counts as 1, so the traffic is per image, equal to the batch-1 build's."""
    static, dynamic = (make_report(parse_layer_log(REAL_LOG[k]), TINY_OPS) for k in ("static", "dynamic_batch"))
    assert dynamic.layers[1].output_shapes == ((-1, 4, 8, 8),) and dynamic.layers[0].output_shapes == ()  # shape_call
    assert dynamic.activation_bytes_by_dtype == static.activation_bytes_by_dtype


@pytest.mark.parametrize("major, by_dtype", [(10, {"Half": 1280}), (11, {"Float": 2560})])
def test_inspector_json_of_the_double_gives_activation_bytes(monkeypatch, tmp_path, major, by_dtype):
    """Inspector JSON (``Dimensions`` + ``Format/Datatype`` per tensor): TRT 10 runs the float parts in FP16 (its flag),
    TRT 11 in the graph's FP32; conv1 [N,4,8,8], relu1 [N,4,8,8], conv2 [N,2,8,8] per image."""
    install_doubles(monkeypatch, major)
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_model(), path)
    report = build_engine(path, backend="tensorrt", targets=("sm90",), batch=(1, 2, 4)).report
    assert report.source == "engine-inspector" and [layer.output_shapes for layer in report.layers] == [((-1, 4, 8, 8),)] * 2 + [((-1, 2, 8, 8),)]
    assert report.activation_bytes_by_dtype == by_dtype


def test_traffic_in_the_sidecar_text_and_unknown_for_old_reports():
    report = make_report(parse_layer_log(REAL_LOG["static"]), TINY_OPS)
    info = {"backend": "tensorrt-rtx", "backend_version": "1.7", "precision": "int8", "targets": ["sm89"], "inputs": [], "outputs": []}
    assert "\n  activation traffic: 0.00 MB per image (Float 0.00, Int8 0.00)\n" in summary_text({**info, "report": report.to_dict()})
    yolov5n = {"Float": 55_876_800, "Half": 5_717_600, "Int8": 15_104_000}  # the default yolov5n engine's sidecar
    assert traffic_text(yolov5n) == "76.70 MB per image (Float 55.88, Half 5.72, Int8 15.10)"
    old = report.to_dict()
    for layer in old["layers"]:
        del layer["output_shapes"]  # a sidecar written before shapes were recorded
    again = EngineReport.from_dict(old)
    assert again.activation_bytes is None and again.output_dtypes == report.output_dtypes
    assert "activation traffic: unknown" in summary_text({**info, "report": again.to_dict()})


@pytest.mark.parametrize("schema", ["Bindings", "I/O Tensors"])  # TensorRT 10 / 11 inspector JSON
def test_inspector_json(schema):
    doc = {
        "Layers": [
            {"Name": "conv0", "LayerType": "CaskConvolution",
             "Inputs": [{"Name": "x", "Dimensions": [1, 3, 8, 8], "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
             "Outputs": [{"Name": "y", "Dimensions": [1, 16, 8, 8], "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
             "Metadata": "[ONNX Layer: /model.0/conv/Conv]"},
            {"Name": "head", "LayerType": "CaskConvolution", "Inputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}],
             "Outputs": [{"Name": "z", "Dimensions": [1, 2, 8, 8], "Format/Datatype": "Row major linear FP32"}],
             "Metadata": "[ONNX Layer: /head/Conv]"},
        ],
        schema: ["x", "z"],
    }
    layers = parse_inspector_json(json.dumps(doc))
    assert [(layer.input_dtypes, layer.output_dtypes) for layer in layers] == [(("Int8",), ("Half",)), (("Float",), ("Float",))]
    report = make_report(layers, OPS, "engine-inspector")
    assert report.float_convs == ["/head/Conv"] and report.activation_bytes_by_dtype == {"Float": 4 * 128, "Half": 2 * 1024}


@pytest.mark.parametrize("text, want", [("Int8", "Int8"), ("Row major linear FP32", "Float"), ("Float", "Float"),
                                        ("Half", "Half"), ("Row major linear BF16 format", "BFloat16"), ("Int32", "Int32")])
def test_canonical_dtype(text, want):
    assert canonical_dtype(text) == want


def test_gpu_names_to_compute_capabilities():
    assert parse_targets(["rtx4090,t4", "sm89", "NVIDIA A100-SXM4-80GB".replace("-SXM4-80GB", ""), "8.6"]) == ("sm89", "sm75", "sm80", "sm86")
    assert to_cc("NVIDIA GeForce RTX 4090") == "sm89" and to_cc("sm_120") == "sm120"
    with pytest.raises(QyoloError, match="unknown GPU 'gtx9000'"):
        to_cc("gtx9000")


def test_rtx_groups_keep_turing_apart_for_int8():
    assert rtx_groups(("sm89", "sm75", "sm86"), "int8") == [("sm89", "sm86"), ("sm75",)]
    assert rtx_groups(("sm89", "sm75"), "fp16") == [("sm89", "sm75")]
    with pytest.raises(QyoloError, match="cannot target sm90"):
        rtx_groups(("sm90",), "fp16")


def test_builder_log_reads_the_whole_format_datatype_value():
    """``Format/Datatype: Thirty-two wide ... Int8 format`` is Int8, not the first word "Thirty"."""
    line = ("Name: /c/Conv_myl0_9, LayerType: correlation, Inputs: [ { Name: a, Format/Datatype: Thirty-two wide channel vectorized "
            "row major Int8 format, Dimensions: [1,16,8,8] }], Constants: [], Outputs: [ { Name: b, Format/Datatype: Channel major "
            "FP16 format where channel % 8 == 0 }], TacticName: t, StreamId: 0, Metadata: [ONNX Layer: /c/Conv]")
    (layer,) = parse_layer_log([line])
    assert layer.input_dtypes == (canonical_dtype("Int8"),) and layer.output_dtypes == (canonical_dtype("FP16"),)
    assert canonical_dtype("Int8") != canonical_dtype("FP16") != canonical_dtype("Thirty")
