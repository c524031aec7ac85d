"""Split weight / activation widths (W4A8, W8A4): each side on its own grid, the report, the CLI, reconstruction."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from qdq_graphs import lowbit_scales, tensor_values, tiny_detector

from conftest import assert_clean_error, run_cli
from qyolo_trt.cli.compare import parse_widths
from qyolo_trt.errors import QyoloError
from qyolo_trt.model import default_opset
from qyolo_trt.qdq import REPORT_KEY, QuantizeConfig, lint, quantize
from qyolo_trt.qdq.passes.lowbit import lower_bits, width_label
from qyolo_trt.qdq.pipeline import run

FEEDS = {"images": np.random.default_rng(5).random((1, 3, 16, 16), dtype=np.float32)}
WEIGHTS = ("cv2.weight", "cv4.weight")  # below 8 bits the stem (first conv) stays float by default


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return tiny_detector()


def scales_for(model: onnx.ModelProto, bits: int):
    return lowbit_scales(model, FEEDS, bits)


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def _report(model: onnx.ModelProto) -> dict:
    return json.loads(next(p.value for p in model.metadata_props if p.key == REPORT_KEY))


def _act_levels(low: onnx.ModelProto) -> tuple[np.ndarray, float, np.ndarray]:
    """cv2's input activation before its Q/DQ (+ Clip), its scale, and its integer levels after."""
    values = tensor_values(low, FEEDS)
    s = float(numpy_helper.to_array(_inits(low)["cv2_act_qscale"]))
    return values["cv2_act"], s, np.rint(values["cv2_act_dequantized"] / s)


def test_config_resolves_the_widths_from_bits():
    assert (QuantizeConfig().weight_bits, QuantizeConfig().act_bits, QuantizeConfig().lowbit) == (8, 8, False)
    assert (QuantizeConfig(bits=4).weight_bits, QuantizeConfig(bits=4).act_bits) == (4, 4)
    w4a8 = QuantizeConfig(weight_bits=4)
    assert (w4a8.weight_bits, w4a8.act_bits, w4a8.lowbit, w4a8.mode) == (4, 8, True, "symmetric")
    w8a4 = QuantizeConfig(bits=4, weight_bits=8)
    assert (w8a4.weight_bits, w8a4.act_bits, w8a4.mode) == (8, 4, "symmetric")


@pytest.mark.parametrize(("options", "words"), [
    ({"weight_bits": 4, "mode": "shifted"}, "symmetric and asymmetric"),
    ({"act_bits": 4, "bias_correction": True}, "--bits below 8 does not combine with --bias-correction"),
    ({"weight_bits": 4, "fallback_k": 1}, "--auto-fallback"),
    ({"act_bits": 4, "target": "openvino", "mode": "asymmetric"}, "--target openvino"),
    ({"weight_bits": 9}, "--weight-bits must be in 2..8, got 9"),
    ({"act_bits": 1}, "--act-bits must be in 2..8, got 1"),
])  # fmt: skip
def test_refusals(options, words):
    with pytest.raises(QyoloError, match=words):
        QuantizeConfig(**options)


def test_low_bits_keep_the_first_conv_float_unless_told():
    assert QuantizeConfig().keep_float == ("head",) and QuantizeConfig(target="openvino").keep_float == ("head",)
    assert QuantizeConfig(bits=4).keep_float == QuantizeConfig(act_bits=4).keep_float == ("head", "first-conv")
    assert QuantizeConfig(bits=4, keep_float=("head",)).keep_float == ("head",) and QuantizeConfig(bits=4, keep_float=()).keep_float == ()


def test_w4a8_has_int4_weights_and_unclipped_int8_activations(model):
    low = run(model, scales_for(model, 8), QuantizeConfig(weight_bits=4)).model
    onnx.checker.check_model(low)
    assert default_opset(low) == 21 and _inits(low)["cv2.weight_int8"].data_type == onnx.TensorProto.INT4
    assert not [n for n in low.graph.node if n.op_type == "Clip"]  # activations keep the full int8 grid
    values = tensor_values(low, FEEDS)
    fp32_w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for name in WEIGHTS:  # per-channel MinMax on [-7, 7]
        w = fp32_w[name]
        s = np.abs(w).reshape(len(w), -1).max(axis=1).reshape(-1, 1, 1, 1) / 7
        np.testing.assert_allclose(values[name], np.clip(np.rint(w / s), -7, 7) * s, rtol=1e-6, atol=1e-7)
    x, s, k = _act_levels(low)
    np.testing.assert_allclose(k, np.clip(np.rint(x / s), -128, 127), atol=1e-3)
    assert k.max() > 100 and np.unique(k).size > 30  # the int8 grid, far beyond a 4-bit clip at 7
    assert _report(low)["weight_bits"] == 4 and _report(low)["act_bits"] == 8 and "bits" not in _report(low)
    assert "stem.weight_int8" not in _inits(low) and {"node": "stem/Conv", "op": "Conv", "reason": "first-conv"} in _report(low)["float_nodes"]


def test_w8a4_keeps_int8_weights_and_clips_activations_to_4_bits(model):
    scales = scales_for(model, 4)
    low = run(model, scales, QuantizeConfig(bits=4, weight_bits=8)).model
    onnx.checker.check_model(low)
    plain = quantize(model, scales).model  # the int8 rewrite: its weight integers are the W8A4 ones
    assert default_opset(low) == 17
    for name in ("cv2.weight_int8", "cv4.weight_int8"):
        q = numpy_helper.to_array(_inits(low)[name])
        assert _inits(low)[name].data_type == onnx.TensorProto.INT8 and np.abs(q).max() == 127
        assert np.array_equal(q, numpy_helper.to_array(_inits(plain)[name]))
    x, s, k = _act_levels(low)
    np.testing.assert_allclose(k, np.clip(np.rint(x / s), -7, 7), atol=1e-3)
    assert k.max() == 7 and np.unique(k).size > 3
    clips = [n for n in low.graph.node if n.op_type == "Clip"]
    assert len(clips) == sum(n.op_type == "QuantizeLinear" and n.input[0] not in _inits(low) for n in low.graph.node)
    assert _report(low)["act_bits"] == 4 and width_label(_report(low)) == "W8A4"


def test_split_widths_match_lower_bits_and_w4a4_keeps_its_report(model):
    w4a4 = run(model, scales_for(model, 4), QuantizeConfig(bits=4)).model
    assert _report(w4a4)["bits"] == 4 and "weight_bits" not in _report(w4a4) and width_label(_report(w4a4)) == "W4A4"
    qdq = quantize(model, scales_for(model, 4)).model
    assert lower_bits(qdq, model, 4).SerializeToString() == lower_bits(qdq, model, 4, 4).SerializeToString()
    assert lower_bits(qdq, model, 8, 8).SerializeToString() == qdq.SerializeToString()
    with pytest.raises(QyoloError, match="--act-bits must be in 2..8, got 9"):
        lower_bits(qdq, model, 4, 9)


def test_scales_are_checked_against_the_activation_width(model):
    with pytest.raises(QyoloError, match="calibrated for 4 bits, not 8"):
        run(model, scales_for(model, 4), QuantizeConfig(weight_bits=4))
    with pytest.raises(QyoloError, match="calibrated for 8 bits, not 4"):
        run(model, scales_for(model, 8), QuantizeConfig(act_bits=4))


def test_compare_width_lists():
    assert parse_widths("--bits", "8, 4,w8a4,W4A8") == [(8, 8), (4, 4), (8, 4), (4, 8)]
    assert parse_widths("--reconstruct", "") == []
    for bad, words in (("w8", "wXaY"), ("w9a4", "must be in 2..8"), ("4.5", "wXaY")):
        with pytest.raises(QyoloError, match=words):
            parse_widths("--reconstruct", bad)


@pytest.mark.parametrize(("args", "words"), [
    (["quantize", "--weight-bits", "9", "-o", "q.onnx"], ["--weight-bits"]),
    (["quantize", "--act-bits", "x", "-o", "q.onnx"], ["--act-bits"]),
    (["quantize", "--images", "nowhere", "--act-bits", "4", "--bias-correction", "-o", "q.onnx"], ["--bias-correction"]),
    (["compare", "--data", "d.json", "--bits", "w4a9"], ["--bits", "2..8"]),
    (["compare", "--data", "d.json", "--reconstruct", "w4"], ["--reconstruct", "wXaY"]),
])  # fmt: skip
def test_cli_error_lines(tmp_path, args, words):
    assert_clean_error(run_cli(*args, cwd=tmp_path), *words)
    assert not (tmp_path / "q.onnx").exists()


def test_cli_quantize_w8a4_then_inspect(tmp_path):
    scales, out = tmp_path / "s4.json", tmp_path / "w8a4.onnx"
    assert run_cli("calibrate", "--num-images", "1", "--bits", "4", "-o", scales).returncode == 0
    assert_clean_error(run_cli("quantize", "--scales", scales, "--weight-bits", "4", "-o", out), "calibrated for 4 bits, not 8")
    proc = run_cli("quantize", "--scales", scales, "--act-bits", "4", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "W8A4" in proc.stdout
    low = onnx.load(out)
    assert not any(t.data_type == onnx.TensorProto.INT4 for t in low.graph.initializer)
    assert sum(n.op_type == "Clip" for n in low.graph.node) > 50
    shown = run_cli("inspect", "--strict", out)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "scales method uh, W8A4" in shown.stdout


def test_reconstruction_keeps_each_grid():
    """AdaRound reads the weight grid from the integers: [-7, 7] at W4A8, [-127, 127] at W8A4; the activation
    Clip of W8A4 stays on the 4-bit grid."""
    torch = pytest.importorskip("torch")
    from qyolo_trt.torchq.graph import TorchGraph
    from qyolo_trt.torchq.reconstruct import reconstruct

    fp32 = tiny_detector()
    feeds = [{"images": np.random.default_rng(s).random((1, 3, 16, 16), dtype=np.float32)} for s in range(3)]
    torch.set_num_threads(1)
    for weight_bits, act_bits, qmax in ((4, 8, 7), (8, 4, 127)):
        qdq = lower_bits(quantize(fp32, scales_for(fp32, act_bits)).model, fp32, weight_bits, act_bits)
        out, stats = reconstruct(qdq, fp32, feeds, iters=40, batch=2, seed=0, drop_prob=0.0, threads=1)
        before, after = TorchGraph(qdq), TorchGraph(out)
        steps = [np.abs(after.weight(n).integers() - before.weight(n).integers()).max() for n in before.weight_keys]
        assert max(steps) <= 1 and sum(r["changed"] for r in stats["blocks"]) > 0
        assert max(np.abs(after.weight(n).integers()).max() for n in after.weight_keys) == qmax
        assert [i.data_type for i in out.graph.initializer] == [i.data_type for i in qdq.graph.initializer]
        clips = {i: numpy_helper.to_array(t) for i, t in _inits(out).items() if i.endswith(("_clip_min", "_clip_max"))}
        assert clips == {i: numpy_helper.to_array(t) for i, t in _inits(qdq).items() if i in clips}
        assert bool(clips) == (act_bits == 4)


@pytest.mark.parametrize("weight_bits, act_bits", [(4, 4), (8, 4), (4, 8)])
def test_lowbit_models_lint_clean_for_tensorrt(model, weight_bits, act_bits):
    """The a-bit Clip after an activation DQ is part of its quantizer (Concat scales are checked through it) and int4
    weights carry an int4 zero point 0: a low-bit model of the TensorRT placement lints clean."""
    low = lower_bits(quantize(model, scales_for(model, act_bits)).model, model, weight_bits, act_bits)
    assert lint(low) == []


def test_lint_still_sees_a_concat_scale_mismatch_through_the_clip(model):
    low = lower_bits(quantize(model, scales_for(model, 4)).model, model, 4, 4)
    inits = _inits(low)
    cat = next(n for n in low.graph.node if n.op_type == "Concat")
    clip = next(n for n in low.graph.node if n.output[0] == cat.input[0])
    assert clip.op_type == "Clip"
    dq = next(n for n in low.graph.node if n.output[0] == clip.input[0])
    scale = inits[dq.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * 2, scale.name))
    assert {(i.code, i.node) for i in lint(low)} >= {("concat-scale", cat.name)}
