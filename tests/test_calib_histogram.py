"""Streaming two-sided histogram: exact binning, lossless re-binning, exact merges, bounded state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qyolo_trt.calib.histogram import Histogram, Scratch, pow2_above


def one_go(x: np.ndarray, bins: int) -> np.ndarray:
    """Reference: the whole data binned at once at its final range, with np.histogram."""
    r = pow2_above(float(np.abs(x).max()))
    counts, _ = np.histogram(x.astype(np.float64), bins=2 * bins, range=(-r, r))
    return counts


def test_pow2_above() -> None:
    assert [pow2_above(v) for v in (0.3, 0.5, 1.0, 3.0, 4.0, 1e-30)] == [0.5, 1.0, 2.0, 4.0, 8.0, 2.0**-99]


def test_views_place_values_in_the_documented_bins() -> None:
    h = Histogram(bins=4)
    h.update(np.array([-0.5, -0.01, 0.0, 0.25, 0.75, 0.875], np.float32))
    assert h.range == 1.0 and h.width == 0.25  # the power of two above the largest magnitude
    # pos bin k = [k w, (k+1) w)
    assert h.pos.tolist() == [1, 1, 0, 2]
    # neg bin k = [-(k+1) w, -k w)
    assert h.neg.tolist() == [1, 1, 0, 0]  # -0.01 -> k=0, -0.5 -> k=1
    assert (h.min, h.max, h.total) == (-0.5, 0.875, 6)


def test_growing_ranges_keep_every_count_and_match_one_go_histogram() -> None:
    rng = np.random.default_rng(0)
    # each batch widens the range (x10, x1000, x3): power-of-two re-binning must lose nothing
    batches = [rng.standard_normal(50_000).astype(np.float32) * s for s in (0.01, 0.1, 100.0, 300.0, 1.0)]
    h = Histogram(bins=256)
    scratch = Scratch()
    for b in batches:
        h.update(b, scratch)
    x = np.concatenate(batches)
    assert h.total == x.size
    assert h.range == pow2_above(float(np.abs(x).max()))
    assert (h.min, h.max) == (float(x.min()), float(x.max()))  # true extremes, not the histogram range
    np.testing.assert_array_equal(h.counts, one_go(x, 256))


def test_values_on_a_power_of_two_bin_the_same_before_and_after_growth() -> None:
    batches = [np.array([1.0, -1.0, 0.5, -0.25], np.float32), np.array([3.0, 2.0, -1.0], np.float32)]
    h = Histogram(bins=8)
    for b in batches:
        h.update(b)
    np.testing.assert_array_equal(h.counts, one_go(np.concatenate(batches), 8))


def test_grow_by_more_than_bins_collapses_each_side_into_bin_zero() -> None:
    h = Histogram(bins=16)
    h.update(np.array([-1.0, -0.3, 0.2, 0.9], np.float32))
    h.update(np.array([1e6], np.float32))
    assert h.total == 5
    assert h.pos[0] == 2 and h.neg[0] == 2 and h.pos[-1] == 1


def test_merged_equals_streaming_the_union_and_repeat_scales_counts() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(20_000).astype(np.float32)
    b = (rng.standard_normal(30_000) * 40).astype(np.float32)
    ha, hb, hu = Histogram(bins=512), Histogram(bins=512), Histogram(bins=512)
    ha.update(a)
    hb.update(b)
    hu.update(np.concatenate([a, b]))
    merged = Histogram.merged([ha, hb])
    np.testing.assert_array_equal(merged.counts, hu.counts)
    assert (merged.range, merged.min, merged.max) == (hu.range, hu.min, hu.max)
    np.testing.assert_array_equal(Histogram.merged([ha], repeat=4).counts, 4 * ha.counts)
    assert ha.total == a.size  # the inputs are not modified by the merge


def test_zeros_then_values_and_non_finite_values() -> None:
    h = Histogram(bins=64)
    h.update(np.zeros(100, np.float32))
    assert h.range == 0.0 and h.pos[0] == 100
    h.update(np.array([np.nan, np.inf, -np.inf, 3.0, -1.0], np.float32))
    assert h.nonfinite == 3
    assert h.total == 102 and h.pos[0] == 100  # the zeros survive the first real range
    assert (h.min, h.max, h.range) == (-1.0, 3.0, 4.0)
    h.update(np.full(10, np.nan, np.float32))
    assert h.nonfinite == 13 and h.total == 102


def test_tiny_ranges_do_not_overflow_the_index_arithmetic() -> None:
    h = Histogram(bins=128)
    x = np.array([1e-38, -3e-38, 2e-38], np.float32)
    h.update(x)
    assert h.total == 3 and math.isfinite(h.range) and h.range > 0
    np.testing.assert_array_equal(h.counts, one_go(x, 128))


@pytest.mark.parametrize("batches", [1, 50])
def test_state_size_does_not_depend_on_the_number_of_batches(batches: int) -> None:
    rng = np.random.default_rng(2)
    h = Histogram(bins=2048)
    for _ in range(batches):
        h.update(rng.standard_normal(10_000).astype(np.float32))
    assert h.nbytes() == 2 * 2048 * 8
    assert h.total == 10_000 * batches
