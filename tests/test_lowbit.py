"""Low-bit (W4A4, W6A6) simulation: clips searched for the low-bit grid, int4 weights, exact activation fake-quant."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from qdq_graphs import lowbit_scales, observed_scales, tensor_values, tiny_detector

from conftest import assert_clean_error, run_cli
from qyolo_trt.calib import Histogram, MethodOptions, compute_range
from qyolo_trt.errors import QyoloError
from qyolo_trt.qdq import QuantizeConfig, quantize
from qyolo_trt.qdq.passes.lowbit import lower_bits
from qyolo_trt.qdq.pipeline import run

FEEDS = {"images": np.random.default_rng(3).random((1, 3, 16, 16), dtype=np.float32)}


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return tiny_detector()


def scales_for(model: onnx.ModelProto, bits: int):
    return lowbit_scales(model, FEEDS, bits)


def test_gaussian_clip_follows_the_grid():
    hist = Histogram()
    hist.update(np.random.default_rng(0).normal(0, 1, 400_000).astype(np.float32))
    clips = {b: compute_range("mse", hist, MethodOptions(bits=b)) for b in (4, 8)}
    assert 2.3 < clips[4].clip < 2.7  # the MSE-optimal 4-bit clip of N(0, 1) is ~2.5 sigma (Banner et al., ACIQ)
    assert clips[8].clip > 3.5
    assert clips[4].scale * 7 == pytest.approx(clips[4].clip) and clips[8].scale * 127 == pytest.approx(clips[8].clip)
    uh4 = compute_range("uh", hist, MethodOptions(bits=4))
    assert uh4.shift_scale == pytest.approx((uh4.shift * 2 - 2 * uh4.lower) / 14)  # (upper - lower) / (2 qmax)


def _weight_fakequant(w: np.ndarray, bits: int) -> np.ndarray:
    qmax = 2 ** (bits - 1) - 1
    s = np.abs(w).reshape(len(w), -1).max(axis=1).reshape(-1, 1, 1, 1) / qmax
    return np.clip(np.rint(w / s), -qmax, qmax) * s


@pytest.mark.parametrize("bits", [4, 6])
def test_weights_and_activations_on_the_grid(model, bits):
    low = run(model, scales_for(model, bits), QuantizeConfig(bits=bits)).model
    onnx.checker.check_model(low)
    qmax = 2 ** (bits - 1) - 1
    opset = next(o.version for o in low.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == (21 if bits == 4 else 17)
    inits = {t.name: t for t in low.graph.initializer}
    assert inits["cv2.weight_int8"].data_type == (onnx.TensorProto.INT4 if bits == 4 else onnx.TensorProto.INT8)
    values = tensor_values(low, FEEDS)
    fp32_w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for name in ("cv2.weight", "cv4.weight"):  # the stem (first conv) stays float below 8 bits
        np.testing.assert_allclose(values[name], _weight_fakequant(fp32_w[name], bits), rtol=1e-6, atol=1e-7)
    s = float(numpy_helper.to_array(inits["cv2_act_qscale"]))
    x, y = values["cv2_act"], values["cv2_act_dequantized"]  # a quantized activation before / after its Q/DQ + Clip
    np.testing.assert_allclose(y, np.clip(np.rint(x / s), -qmax, qmax) * s, rtol=1e-6, atol=1e-6)
    assert np.unique(np.rint(y / s)).size > qmax // 2  # a real spread of levels (post-SiLU: mostly positive)


def test_asymmetric_grid(model):
    low = run(model, scales_for(model, 4), QuantizeConfig(bits=4, mode="asymmetric")).model
    values = tensor_values(low, FEEDS)
    inits = {t.name: numpy_helper.to_array(t) for t in low.graph.initializer}
    s, zp = float(inits["cv2_act_qscale"]), int(inits["cv2_act_qzero"])
    assert 0 <= zp <= 15
    k = values["cv2_act_dequantized"] / s + zp
    np.testing.assert_allclose(k, np.rint(k), atol=1e-3)
    assert k.min() >= -1e-3 and k.max() <= 15 + 1e-3


def test_eight_bits_is_unchanged(model):
    q = quantize(model, observed_scales(model, FEEDS)).model
    assert lower_bits(q, model, 8).SerializeToString() == q.SerializeToString()


def test_scales_must_match_the_width(model):
    with pytest.raises(QyoloError, match="calibrated for 8 bits, not 4"):
        run(model, observed_scales(model, FEEDS), QuantizeConfig(bits=4))
    with pytest.raises(QyoloError, match="calibrated for 4 bits, not 8"):
        run(model, scales_for(model, 4), QuantizeConfig())
    with pytest.raises(QyoloError, match="symmetric and asymmetric"):
        QuantizeConfig(bits=4, mode="shifted")


def test_compare_cli_rejects_bad_bits(coco_dir):
    assert_clean_error(run_cli("compare", "--data", coco_dir / "instances.json", "--bits", "9"), "--bits")


def test_cli_calibrate_and_quantize_w4(tmp_path):
    scales, out = tmp_path / "s4.json", tmp_path / "w4.onnx"
    proc = run_cli("calibrate", "--num-images", "1", "--bits", "4", "-o", scales)
    assert proc.returncode == 0, proc.stderr
    assert_clean_error(run_cli("quantize", "--scales", scales, "-o", out), "calibrated for 4 bits")
    assert not out.exists()
    proc = run_cli("quantize", "--scales", scales, "--bits", "4", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    low = onnx.load(out)
    assert next(o.version for o in low.opset_import if o.domain in ("", "ai.onnx")) == 21
    assert sum(t.data_type == onnx.TensorProto.INT4 for t in low.graph.initializer) > 50  # every quantized conv weight
