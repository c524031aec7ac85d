"""Calibration methods against straightforward reference implementations on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy as scipy_kl

from qyolo_trt.calib.histogram import Histogram
from qyolo_trt.calib.methods import METHODS, MethodOptions, compute_range
from qyolo_trt.calib.methods.entropy import kl_divergences
from qyolo_trt.calib.scales import QMAX

OPTS = MethodOptions()


def silu_data(seed: int, n: int = 100_000) -> np.ndarray:
    """SiLU of a skewed normal: a dense band in [-0.2785, 0] and a long, thin positive tail."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n) * rng.uniform(1.0, 2.5) + rng.standard_exponential(n) * 0.5
    return (z / (1.0 + np.exp(-z))).astype(np.float32)


def hist_of(x: np.ndarray, bins: int = 2048) -> Histogram:
    h = Histogram(bins=bins)
    for part in np.array_split(x, 3):
        h.update(part)
    return h


def brute_force(h: Histogram, candidates: np.ndarray, grid) -> int:
    """Loop over every candidate bin edge k: fake-quantise each bin centre on ``grid(u)`` and sum count * error^2."""
    centres = h.centers()
    errors = []
    for k in candidates:
        offset, step, qmin, qmax = grid(k * h.width)
        q = np.clip(np.rint((centres - offset) / step), qmin, qmax)
        errors.append(float(np.sum(h.counts * (centres - offset - q * step) ** 2)))
    return int(candidates[int(np.argmin(errors))])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uh_clips_are_within_one_bin_of_brute_force(seed: int) -> None:
    h = hist_of(silu_data(seed))
    r = compute_range("uh", h, OPTS)
    w, lo = h.width, min(h.min, 0.0)
    assert r.warning is None and r.lower == lo == pytest.approx(-0.2785, abs=2e-3)
    every = np.arange(1, int(math.ceil(h.max / w)) + 1)
    sym = brute_force(h, every, lambda u: (0.0, u / QMAX, -QMAX, QMAX))
    asym = brute_force(h, every, lambda u: (lo, (u - lo) / 255, 0, 255))
    shifted = brute_force(h, every, lambda u: ((lo + u) / 2, (u - lo) / (2 * QMAX), -QMAX, QMAX))
    assert abs(r.clip / w - sym) <= 1
    assert abs(r.upper / w - asym) <= 1
    assert abs((2 * r.shift - lo) / w - shifted) <= 1
    assert r.shift_scale == pytest.approx((2 * r.shift - 2 * lo) / (2 * QMAX))
    assert r.scale == pytest.approx(r.clip / QMAX)
    assert r.clip < h.max and r.upper < h.max  # the thin tail is clipped


def test_uh_symmetric_clip_is_near_the_raw_data_optimum() -> None:
    x = silu_data(3, 60_000)
    h = hist_of(x)
    r = compute_range("uh", h, OPTS)
    xs = x.astype(np.float64)

    def raw_mse(clip: float) -> float:
        s = clip / QMAX
        return float(np.mean((xs - np.clip(np.rint(xs / s), -QMAX, QMAX) * s) ** 2))

    clips = np.arange(1, int(math.ceil(h.max / h.width)) + 1) * h.width
    best = min(raw_mse(c) for c in clips)
    assert raw_mse(r.clip) <= best * 1.01
    assert raw_mse(r.clip) < 0.8 * raw_mse(float(np.abs(x).max()))  # clearly better than max


def test_minmax_is_the_true_extremes() -> None:
    x = silu_data(4)
    x[123] = 17.3125
    r = compute_range("minmax", hist_of(x), OPTS)
    assert r.clip == float(np.float32(17.3125)) and r.scale == r.clip / QMAX
    assert (r.min, r.max, r.lower, r.upper) == (float(x.min()), 17.3125, float(x.min()), 17.3125)


def test_percentile_is_within_one_bin_of_numpy() -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(200_000) * 3 + 1).astype(np.float32)
    h = hist_of(x)
    r = compute_range("percentile", h, MethodOptions(percentile=99.0))
    assert abs(r.clip - np.percentile(np.abs(x), 99.0)) <= h.width
    assert abs(r.lower - np.percentile(x, 1.0)) <= h.width
    assert abs(r.upper - np.percentile(x, 99.0)) <= h.width


def test_mse_is_within_one_bin_of_brute_force_on_two_sided_data() -> None:
    rng = np.random.default_rng(6)
    x = rng.laplace(0.0, 1.0, 100_000).astype(np.float32)
    h = hist_of(x)
    r = compute_range("mse", h, OPTS)
    every = np.arange(1, int(math.ceil(h.absmax / h.width)) + 1)
    best = brute_force(h, every, lambda c: (0.0, c / QMAX, -QMAX, QMAX))
    assert abs(r.clip / h.width - best) <= 1
    assert r.clip == pytest.approx(9.89, abs=0.3)  # ACIQ's analytic MSE clip for Laplace(b=1) at 8 bits


def reference_kl(hist: np.ndarray, levels: int = 128) -> np.ndarray:
    """TensorRT's classic entropy calibration, written as the plain loop of the GTC 2017 slides."""
    out = []
    for i in range(levels, hist.size + 1):
        p = hist[:i].astype(np.float64)
        p[i - 1] += hist[i:].sum()
        q = np.zeros(i)
        merge = i // levels
        for g in range(levels):
            start, stop = g * merge, (i if g == levels - 1 else (g + 1) * merge)
            nonzero = p[start:stop] != 0
            if nonzero.any():
                q[start:stop][nonzero] = hist[start:stop].sum() / nonzero.sum()
        out.append(scipy_kl(p, q))
    return np.array(out)


def test_entropy_matches_the_reference_kl_loop() -> None:
    rng = np.random.default_rng(7)
    hist = np.round(rng.exponential(1.0, 600) ** 2 * 50).astype(np.int64)
    hist[rng.choice(600, 120, replace=False)] = 0  # scattered empty bins
    hist[120:136] = 0  # candidates 128..136: the last level is empty while outliers land on it -> KL = inf
    hist[590:] = 3  # a far tail of outliers
    ref = reference_kl(hist)
    candidates, kl = kl_divergences(hist)
    assert candidates.tolist() == list(range(128, 601))
    assert np.array_equal(np.isfinite(kl), np.isfinite(ref)) and not np.isfinite(ref).all()
    finite = np.isfinite(ref)
    np.testing.assert_allclose(kl[finite], ref[finite], rtol=0, atol=1e-6)
    assert int(np.argmin(kl)) == int(np.argmin(ref))


def test_entropy_clip_on_a_histogram() -> None:
    h = hist_of(silu_data(8))
    _, kl = kl_divergences(h.pos + h.neg)
    r = compute_range("entropy", h, OPTS)
    assert r.clip == pytest.approx((128 + int(np.argmin(kl))) * h.width)
    assert 0 < r.clip < h.max


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize(
    "values, words",
    [
        (np.zeros(1000), "all values are zero"),
        (np.full(1000, -2.5), "constant value -2.5"),
        (np.full(10, np.nan), "no finite values"),
        (np.array([np.inf, 1.0, -0.5, np.nan, 0.25]), "2 non-finite"),
    ],
)
def test_degenerate_tensors_get_a_finite_scale_and_a_warning(method: str, values: np.ndarray, words: str) -> None:
    h = Histogram(bins=256)
    h.update(values.astype(np.float32))
    r = compute_range(method, h, OPTS, name="t0")
    assert math.isfinite(r.scale) and r.scale > 0 and r.clip == pytest.approx(r.scale * QMAX)
    assert r.warning is not None and r.warning.startswith("t0:") and words in r.warning
    if "constant" in words:
        assert r.clip == 2.5  # the constant is representable exactly


def test_method_registry_matches_the_named_choices():
    """The CLI offers ``qyolo_trt.defaults.METHODS`` without importing the calibrators: the two lists must agree."""
    from qyolo_trt import defaults
    from qyolo_trt.calib import METHODS as REGISTRY

    assert tuple(REGISTRY) == defaults.METHODS
