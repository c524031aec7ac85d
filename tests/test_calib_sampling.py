"""Sampled histograms (``stride`` > 1): bulk from every s-th value weighted by s, exact tails and min / max."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qyolo_trt.calib import calibrate
from qyolo_trt.calib.histogram import CHUNK, TAIL_SHIFT, Histogram
from qyolo_trt.calib.methods import MethodOptions, compute_range
from qyolo_trt.calib.methods.search import GridScorer
from qyolo_trt.errors import QyoloError


def _silu_batches(seed: int, n: int = 3, size: int = 150_001, df: float = 4) -> list[np.ndarray]:
    """SiLU of heavy-tailed (Student-t) pre-activations: a few rare, large values decide the clips."""
    rng = np.random.default_rng(seed)
    return [(x * 0.5 * (1 + np.tanh(x / 2))).astype(np.float32) for x in (rng.standard_t(df, size) * 1.5 for _ in range(n))]


def test_inner_bins_count_every_sth_value_and_tails_every_value() -> None:
    stride, batches = 7, _silu_batches(0, size=2 * CHUNK + 1001)
    top = max(float(x.max()) for x in batches)
    for x in batches:  # the range is final from the first value on: the inner / tail split never moves
        x[0] = top
    full, sampled = Histogram(bins=256), Histogram(bins=256)
    for x in batches:
        full.update(x)
        sampled.update(x, stride=stride)
    assert (sampled.range, sampled.min, sampled.max) == (full.range, full.min, full.max)
    inner = full.bins >> TAIL_SHIFT
    lo, hi = full.bins - inner, full.bins + inner
    np.testing.assert_array_equal(sampled.counts[:lo], full.counts[:lo])  # tails: exact
    np.testing.assert_array_equal(sampled.counts[hi:], full.counts[hi:])
    edges = np.arange(lo - full.bins, hi - full.bins + 1) * full.width
    subsample = np.concatenate([x[::stride] for x in batches])  # positions 0, s, 2 s, ... of each batch, across chunks
    expected = np.histogram(subsample[np.abs(subsample) < inner * full.width], bins=edges)[0] * stride
    np.testing.assert_array_equal(sampled.counts[lo:hi], expected)
    assert batches[0].size > 2 * CHUNK and CHUNK % stride  # the subsample crosses chunk boundaries out of phase
    assert sampled.total == pytest.approx(full.total, rel=0.01)


def test_sampled_uh_clips_cost_at_most_one_percent_more_error_on_the_full_histogram() -> None:
    options = MethodOptions()
    full, a, b = Histogram(), Histogram(), Histogram()
    for x in _silu_batches(1, df=2):  # binning only every 15th value everywhere: +127% / +296% error (measured)
        full.update(x)
        a.update(x, stride=15)
        b.update(x, stride=15)
    np.testing.assert_array_equal(a.counts, b.counts)  # deterministic
    exact, approx = compute_range("uh", full, options), compute_range("uh", a, options)
    assert approx.min == exact.min and approx.max == exact.max
    grid = GridScorer(full)
    symmetric = [grid.error(np.zeros(1), np.array([r.clip / 127]), -127, 127)[0] for r in (exact, approx)]
    asymmetric = [grid.error(np.array([r.lower]), np.array([(r.upper - r.lower) / 255]), 0, 255)[0] for r in (exact, approx)]
    for errors in (symmetric, asymmetric):  # the full histogram's own optimum vs the sampled one's
        assert errors[0] <= errors[1] <= 1.01 * errors[0]


def test_non_finite_values_are_counted_exactly_with_a_stride() -> None:
    x = _silu_batches(2, n=1, size=1000)[0]
    x[[3, 500]] = [np.nan, np.inf]
    hist = Histogram(bins=64)
    hist.update(x, stride=9)
    assert hist.nonfinite == 2 and hist.max == float(np.nanmax(x[np.isfinite(x)]))


def test_sample_stride_is_validated(yolov5n_onnx: Path) -> None:
    with pytest.raises(QyoloError, match="--sample"):
        calibrate(yolov5n_onnx, [yolov5n_onnx], sample_stride=0)
