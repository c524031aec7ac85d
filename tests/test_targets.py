"""Placement per deployment target (tensorrt, openvino, ort) on the hand-built graph of tests/qdq_graphs.py: which
tensors get Q/DQ, in which form, what ONNX Runtime fuses, the ranges measured for ORT, lint and inspect per target,
config refusals."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import run_cli
from onnx import numpy_helper
from qdq_graphs import observed_scales, tiny_detector

from qyolo_trt.calib.histogram import Histogram
from qyolo_trt.calib.scales import ScalesFile
from qyolo_trt.errors import QyoloError
from qyolo_trt.qdq import QuantizeConfig, lint, quantize
from qyolo_trt.qdq.describe import describe_qdq
from qyolo_trt.qdq.measured import measure_ranges, silu_input_range
from qyolo_trt.qdq.quantize import uncalibrated

FEEDS = {"images": np.random.default_rng(5).random((1, 3, 16, 16), dtype=np.float32)}
# the TensorRT placement: every conv input but the head's, both residual-Add inputs, the MaxPool/Concat/Resize chains
BODY = {"images", "stem_act", "cv1_act", "res_out", "pool1_out", "pool2_out", "cat_out", "cv2_act", "cv3_act", "up_out"}
CARRIED = {"pool1_out", "pool2_out", "cat_out"}  # MaxPool / Concat outputs: OpenVINO keeps them on their inputs' grid
SILU = {"stem", "cv1", "cv2", "cv3", "cv4"}  # the activated convs (head/Conv has no SiLU)
ORT_SILU = SILU - {"cv4"}  # cv4's SiLU feeds the float head conv: the ort placement leaves it (and cv4's output) float


@pytest.fixture(scope="module")
def fp32() -> onnx.ModelProto:
    return tiny_detector()


@pytest.fixture(scope="module")
def scales(fp32) -> ScalesFile:
    return observed_scales(fp32, FEEDS)


@pytest.fixture(scope="module")
def placed(fp32, scales) -> dict[str, onnx.ModelProto]:
    """Each target in its default form (TensorRT's symmetric one: shifted tensors carry a Sub)."""
    return {t: quantize(fp32, scales, QuantizeConfig(target=t, mode="symmetric" if t == "tensorrt" else None)).model
            for t in ("tensorrt", "openvino", "ort")}


def quantized(model: onnx.ModelProto) -> dict[str, np.dtype]:
    """Activation tensor -> the dtype of its QuantizeLinear (weights, constant inputs, excluded)."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: inits[n.input[2]].dtype for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits}


def test_tensorrt_openvino_and_ort_quantize_their_tensors(placed):
    assert set(quantized(placed["tensorrt"])) == BODY
    assert set(quantized(placed["openvino"])) == BODY - CARRIED
    extra = {f"{c}_out" for c in ORT_SILU} | {f"{c}_sig" for c in ORT_SILU}  # ORT: each conv output before its SiLU, each sigmoid
    assert set(quantized(placed["ort"])) == BODY | extra
    assert set(quantized(placed["tensorrt"]).values()) == {np.dtype(np.int8)}
    assert set(quantized(placed["openvino"]).values()) == set(quantized(placed["ort"]).values()) == {np.dtype(np.uint8)}


def test_openvino_without_qdq_after_concat_and_maxpool_computes_the_same(placed, fp32, scales, monkeypatch):
    """The carried ops' outputs are already on their group's grid: the Q/DQ the TensorRT structure puts there is an
    identity, so leaving it out (OpenVINO's faster form) changes no output value."""
    from dataclasses import replace

    from qyolo_trt.qdq.rules import profiles

    monkeypatch.setitem(profiles.PROFILES, "openvino", replace(profiles.PROFILES["openvino"], carried=frozenset()))
    requantized = quantize(fp32, scales, QuantizeConfig(target="openvino")).model
    assert set(quantized(requantized)) == BODY
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, FEEDS)  # noqa: E731
    for a, b in zip(run(placed["openvino"]), run(requantized)):
        np.testing.assert_array_equal(a, b)
    assert lint(placed["openvino"], "openvino") == []


def test_report_names_a_cpu_target_and_its_default_mode(placed, fp32, scales):
    reports = {t: json.loads(next(p.value for p in m.metadata_props if p.key == "qyolo_trt.report")) for t, m in placed.items()}
    assert "target" not in reports["tensorrt"] and reports["tensorrt"]["mode"] == "symmetric"
    assert (reports["openvino"]["target"], reports["openvino"]["mode"]) == ("openvino", "asymmetric")
    assert reports["ort"]["quantized"] == {"Add": 1, "Concat": 1, "Conv": 5, "MaxPool": 2, "Mul": 4, "Resize": 1, "Sigmoid": 4}
    # the tensorrt target is exactly what quantize wrote before targets existed
    same = quantize(fp32, scales, QuantizeConfig(mode="symmetric")).model.SerializeToString()
    assert quantize(fp32, scales, QuantizeConfig(mode="symmetric", target="tensorrt")).model.SerializeToString() == same


def qlinear_ops(model: onnx.ModelProto, tmp_path) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually runs (its optimized model)."""
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
    return {op: ops.count(op) for op in ("QLinearConv", "QLinearSigmoid", "QLinearMul", "Conv")}


def test_onnxruntime_fuses_the_ort_placement_into_qlinear_kernels(placed, tmp_path):
    # cv4 (its SiLU feeds the float head) and the head run as float convs
    assert qlinear_ops(placed["ort"], tmp_path) == {"QLinearConv": 4, "QLinearSigmoid": 4, "QLinearMul": 4, "Conv": 2}
    # the TensorRT placement leaves ORT float convs behind their Q/DQ
    assert qlinear_ops(placed["tensorrt"], tmp_path)["QLinearConv"] == 0


def test_ort_ranges_the_calibration_lacks_are_measured(fp32, scales):
    body_only = ScalesFile(scales.model_hash, "uh", 1, {k: v for k, v in scales.tensors.items() if k in BODY})
    missing = uncalibrated(fp32, body_only, QuantizeConfig(target="ort"))
    assert set(missing) == {f"{c}_out" for c in ORT_SILU} | {f"{c}_sig" for c in ORT_SILU}
    assert uncalibrated(fp32, body_only, QuantizeConfig(target="openvino")) == []
    ranges = measure_ranges(fp32, [FEEDS], missing)
    for c in ORT_SILU:
        sig = ranges[f"{c}_sig"]
        assert sig.lower == 0.0 <= sig.min and sig.upper == sig.max <= 1  # a sigmoid output: [0, max]
        pre = ranges[f"{c}_out"]
        assert pre.min <= pre.lower <= 0 < pre.upper <= pre.max


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


def silu_error(x: np.ndarray, lo: float, hi: float) -> float:
    """Mean squared error of silu after uint8 quantization of x over [lo, hi]."""
    step = (hi - lo) / 255
    q = np.clip(np.round((x - lo) / step), 0, 255) * step + lo
    return float(np.mean((silu(q) - silu(x)) ** 2))


def test_silu_input_range_beats_min_max_after_the_silu():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(1.0, 1.5, 200_000), rng.uniform(-40, -8, 20_000)]).astype(np.float32)  # a dead tail
    hist = Histogram()
    hist.update(x)
    r = silu_input_range(hist)
    assert -40 < r.lower < -2 and r.upper <= x.max()
    assert silu_error(x, r.lower, r.upper) < 0.5 * silu_error(x, float(x.min()), float(x.max()))
    positive = Histogram()
    positive.update(np.abs(x[:1000]))
    assert silu_input_range(positive).lower == 0.0


def issue_codes(model: onnx.ModelProto, target: str) -> set[str]:
    return {i.code for i in lint(model, target) if i.severity == "error"}


def test_lint_knows_the_targets(placed):
    assert issue_codes(placed["tensorrt"], "tensorrt") == set()
    assert issue_codes(placed["openvino"], "tensorrt") == {"zero-point"}
    assert issue_codes(placed["ort"], "tensorrt") == {"zero-point", "silu-qdq"}
    assert issue_codes(placed["openvino"], "openvino") == issue_codes(placed["ort"], "ort") == set()
    with pytest.raises(QyoloError, match="unknown target"):
        lint(placed["ort"], "gpu")
    assert describe_qdq(placed["ort"])["target"] == "ort" and describe_qdq(placed["ort"])["lint_errors"] == 0
    assert describe_qdq(placed["tensorrt"])["target"] == "tensorrt"  # no target in the report: a TensorRT placement
    assert describe_qdq(placed["ort"], "tensorrt")["lint_errors"] > 0


def test_config_defaults_and_refusals():
    from qyolo_trt.defaults import TARGETS
    from qyolo_trt.qdq.rules import PROFILES, RULES

    assert tuple(PROFILES) == TARGETS and all(p.ops <= set(RULES) and p.default_mode in p.modes for p in PROFILES.values())
    assert QuantizeConfig().mode == "shifted" and QuantizeConfig(target="openvino").mode == "asymmetric"
    assert QuantizeConfig(target="ort", mode="symmetric").mode == "symmetric"
    with pytest.raises(QyoloError, match="--target openvino runs --mode asymmetric or symmetric, not shifted"):
        QuantizeConfig(target="openvino", mode="shifted")
    with pytest.raises(QyoloError, match="unknown target 'gpu'"):
        QuantizeConfig(target="gpu")
    with pytest.raises(QyoloError, match="--bits below 8 .* --target ort"):
        QuantizeConfig(target="ort", bits=4)


def test_cli_quantize_target_then_inspect(fp32, scales, tmp_path):
    onnx.save(fp32, tmp_path / "tiny.onnx")
    scales.save(tmp_path / "tiny.json")
    out = tmp_path / "tiny.ov.onnx"
    proc = run_cli("quantize", tmp_path / "tiny.onnx", "--scales", tmp_path / "tiny.json", "--target", "openvino", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "(target openvino, mode asymmetric," in proc.stdout
    text = run_cli("inspect", out, "--strict").stdout
    assert "placed for openvino, mode asymmetric" in text and "lint: clean (openvino rules)" in text
    strict = run_cli("inspect", out, "--strict", "--target", "tensorrt")
    assert strict.returncode == 1 and "zero-point" in strict.stdout
    bad = run_cli("quantize", tmp_path / "tiny.onnx", "--scales", tmp_path / "tiny.json", "--target", "ort", "--mode", "shifted", "-o", tmp_path / "x.onnx")
    assert bad.returncode == 2 and "not shifted" in bad.stderr and not (tmp_path / "x.onnx").exists()


def test_compare_times_target_rows_and_says_when_int8_is_not_faster(placed, tmp_path, monkeypatch):
    from qyolo_trt.eval import compare

    def fake_bench(variants, warmup, iters):  # FP32 f32, FP32 default (bf16), then the target rows
        assert [v.options["precision"] for v in variants] == ["f32", "default", "default", "default"] and iters == 7
        rows = [{"label": v.label, "runner": {"execution_precision": "bf16"}, "ratios": {"fp32.onnx [default]": x}}
                for v, x in zip(variants, (0.6, 1.0, 1.25, 0.9))]
        return {"baselines": ["fp32.onnx [f32]", "fp32.onnx [default]"], "rows": rows}

    monkeypatch.setattr(compare, "run_bench", fake_bench)
    rows = [compare.Variant(f"uh/asymmetric@openvino{i}", placed["openvino"], "openvino", 0.0, {"placement": "openvino"}) for i in (1, 2)]
    speeds, notes = compare.target_speed(tmp_path / "fp32.onnx", rows, 7, tmp_path)
    assert speeds == {"uh/asymmetric@openvino1": {"speed_x": 1.25, "speed_vs": "openvino FP32 (bf16)"},
                      "uh/asymmetric@openvino2": {"speed_x": 0.9, "speed_vs": "openvino FP32 (bf16)"}}
    assert notes == ["openvino: INT8 (uh/asymmetric@openvino2) is not faster than the FP32 model in openvino's default precision "
                     "(bf16) on this machine (0.90x): deploy the FP32 model there"]
    result = {"rows": [{"label": "fp32"}, {"label": "x", "speed_x": 1.25}]}
    assert compare.table_columns(result)[-1] == "x vs FP32 (runtime default)" and compare.SPEED_COLUMN not in compare.COLUMNS
