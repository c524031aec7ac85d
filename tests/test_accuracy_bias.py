"""Empirical bias correction: known answers on the hand-built graph, and the quantize CLI flag."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, run_cli
from qdq_graphs import observed_scales, tensor_values, tiny_detector

from qyolo_trt.defaults import default_calib
from qyolo_trt.qdq import quantize
from qyolo_trt.qdq.passes.bias_correction import _float_input, bias_correct

FEEDS = [{"images": np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)} for i in range(3)]


def _conv_reading(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == "Conv" and n.input[0] == tensor)


def _channel_mean(model: onnx.ModelProto, name: str) -> np.ndarray:
    return np.mean([tensor_values(model, f)[name].astype(np.float64).mean(axis=(0, 2, 3)) for f in FEEDS], axis=0)


@pytest.fixture(scope="module")
def fp32() -> onnx.ModelProto:
    return tiny_detector()


def test_first_conv_mean_matches_fp32_after_correction(fp32):
    """The stem reads the float image in both models, so its corrected channel means equal FP32's exactly."""
    scales = observed_scales(fp32, FEEDS[0])
    scales.tensors["images"].scale *= 8  # a coarse input grid: a visible mean error to correct
    qdq = quantize(fp32, scales).model
    stem = _conv_reading(fp32, "images").output[0]
    want, before = _channel_mean(fp32, stem), _channel_mean(qdq, stem)
    assert np.abs(before - want).max() > 1e-3
    corrected, deltas = bias_correct(qdq, fp32, FEEDS)
    np.testing.assert_allclose(_channel_mean(corrected, stem), want, atol=1e-5)
    assert deltas[stem] == pytest.approx(np.abs(want - before).mean(), rel=1e-4)
    assert len(deltas) == sum(n.op_type == "Conv" for n in qdq.graph.node) - 1  # every conv but the float head


def test_shifted_twin_reads_the_unshifted_tensor(fp32):
    qdq = quantize(fp32, observed_scales(fp32, FEEDS[0]), mode="shifted", shift_padded=True)
    assert qdq.report["shifted"]
    producer = {o: n for n in qdq.model.graph.node for o in n.output}
    padded = set()
    for tensor in qdq.report["shifted"]:
        conv = next(n for n in qdq.model.graph.node if n.op_type == "Conv" and _conv_reading(fp32, tensor).output[0] == n.output[0])
        assert producer[conv.input[0]].op_type == "DequantizeLinear"
        twin_input = _float_input(conv, producer)  # the tensor, or its zero Pad where the conv's padding moved out of it
        pad = producer.get(twin_input)
        if pad is not None and pad.op_type == "Pad":
            padded.add(tensor)
            twin_input = pad.input[0]
        assert twin_input == tensor
    assert padded == {"up_out"}  # read only by the padded 3x3 cv4


def test_cli_bias_correction(tmp_path):
    out = tmp_path / "bc.onnx"
    proc = run_cli("quantize", "--images", default_calib(), "--bias-correction", "--bias-num-images", "2", "--mode", "shifted", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report"]["bias_correction"] == {"images": 2, "convs": 57}
    assert out.is_file()
    stored = run_cli("inspect", str(out), "--json")  # the report inside the model says so too
    assert stored.returncode == 0, stored.stderr
    assert '"bias_correction"' in stored.stdout and '"convs": 57' in stored.stdout
    bad = run_cli("quantize", "--images", default_calib(), "--bias-correction", "--bits", "4", "-o", str(tmp_path / "x.onnx"))
    assert_clean_error(bad, "--bias-correction")
    assert not (tmp_path / "x.onnx").exists()
