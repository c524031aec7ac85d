"""Per-channel weight clip: the MSE search against brute force, and its use in the QDQ rewrite."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper
from qdq_graphs import observed_scales, tiny_detector

from qyolo_trt.errors import QyoloError
from qyolo_trt.qdq import quantize
from qyolo_trt.qdq.weights import MSE_RATIOS, channel_scales, fake_quant_error

FEEDS = {"images": np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)}


def _brute_force(rows: np.ndarray) -> np.ndarray:
    """One channel and one ratio at a time, the plain loop."""
    out = []
    for row in rows:
        amax = np.abs(row).max()
        best = min(sorted(set(MSE_RATIOS) | {1.0}, reverse=True),
                   key=lambda r: np.square(np.clip(np.rint(row / (r * amax / 127)), -127, 127) * (r * amax / 127) - row).sum())
        out.append(best * amax / 127)
    return np.array(out)


def test_mse_clip_matches_brute_force_and_beats_minmax():
    rng = np.random.default_rng(0)
    w = rng.standard_t(df=2, size=(6, 64, 3, 3)).astype(np.float32)  # heavy tails: clipping pays
    w[5] *= 0.0  # an all-zero channel keeps a finite scale
    mse = channel_scales(w, axis=0, clip="mse")
    np.testing.assert_allclose(mse[:5], _brute_force(w[:5].reshape(5, -1).astype(np.float64)), rtol=1e-6)
    assert mse[5] > 0
    rows = w.reshape(6, -1).astype(np.float64)
    minmax = channel_scales(w, axis=0, clip="minmax")
    e_mse, e_max = fake_quant_error(rows, mse.astype(np.float64)), fake_quant_error(rows, minmax.astype(np.float64))
    assert np.all(e_mse <= e_max + 1e-12) and np.any(e_mse < e_max)
    np.testing.assert_allclose(minmax[:5], np.abs(rows[:5]).max(1) / 127, rtol=1e-6)


def test_mse_clip_on_other_axis_equals_transposed():
    w = np.random.default_rng(2).standard_t(df=3, size=(5, 7)).astype(np.float32)
    np.testing.assert_array_equal(channel_scales(w, axis=1, clip="mse"), channel_scales(w.T, axis=0, clip="mse"))


@pytest.mark.parametrize("mode", ["symmetric", "shifted"])
def test_quantize_uses_the_weight_clip(mode):
    fp32 = tiny_detector()
    scales = observed_scales(fp32, FEEDS)
    model = quantize(fp32, scales, mode=mode, weight_clip="mse")
    assert model.report["weight_clip"] == "mse"
    inits = {i.name: numpy_helper.to_array(i) for i in model.model.graph.initializer}
    floats = {i.name: numpy_helper.to_array(i) for i in fp32.graph.initializer if f"{i.name}_wscale" in inits}
    assert len(floats) >= 3
    for name, w in floats.items():
        np.testing.assert_array_equal(inits[f"{name}_wscale"], channel_scales(w, axis=0, clip="mse"))


def test_unknown_weight_clip_is_a_user_error():
    fp32 = tiny_detector()
    with pytest.raises(QyoloError, match="weight clip"):
        quantize(fp32, observed_scales(fp32, FEEDS), weight_clip="l1")
