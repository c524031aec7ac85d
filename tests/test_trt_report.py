"""Layer-report parsing (builder log and inspector JSON) and GPU target handling, on known inputs."""

from __future__ import annotations

import json

import pytest

from qyolo_trt.backends.tensorrt.gpus import parse_targets, rtx_groups, to_cc
from qyolo_trt.backends.tensorrt.report import canonical_dtype, make_report, parse_inspector_json, parse_layer_log
from qyolo_trt.errors import QyoloError


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


@pytest.mark.parametrize("schema", ["Bindings", "I/O Tensors"])  # TensorRT 10 / 11 inspector JSON
def test_inspector_json(schema):
    doc = {
        "Layers": [
            {"Name": "conv0", "LayerType": "CaskConvolution",
             "Inputs": [{"Name": "x", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format."}],
             "Outputs": [{"Name": "y", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
             "Metadata": "[ONNX Layer: /model.0/conv/Conv]"},
            {"Name": "head", "LayerType": "CaskConvolution", "Inputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}],
             "Outputs": [{"Name": "z", "Format/Datatype": "Row major linear FP32"}], "Metadata": "[ONNX Layer: /head/Conv]"},
        ],
        schema: ["x", "z"],
    }
    layers = parse_inspector_json(json.dumps(doc))
    assert [(layer.input_dtypes, layer.output_dtypes) for layer in layers] == [(("Int8",), ("Half",)), (("Float",), ("Float",))]
    assert make_report(layers, OPS, "engine-inspector").float_convs == ["/head/Conv"]


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
