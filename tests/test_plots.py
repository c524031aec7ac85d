"""Histogram plots: one rendered PNG with every calibrator's clip drawn; the CLI on the real model."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import assert_clean_error, run_cli
from qyolo_trt.analysis.plots import COLORS, DPI, FIGSIZE, SILU_MIN, display_counts, ranges, png_bytes, render
from qyolo_trt.calib import METHODS, Histogram

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def post_silu() -> Histogram:
    x = np.random.default_rng(0).normal(0, 2.0, 200_000).astype(np.float32)
    hist = Histogram(bins=2048)
    hist.update(x / (1 + np.exp(-x)))  # SiLU: dense band in [-0.2785, 0], long positive tail
    return hist


def test_display_counts_keep_every_value(post_silu):
    counts, edges = display_counts(post_silu)
    assert counts.sum() == post_silu.total and counts.size <= 512 and edges.size == counts.size + 1
    assert edges[0] <= post_silu.min and edges[-1] >= post_silu.max


def test_render_draws_every_clip_and_writes_png(post_silu, tmp_path):
    found = ranges(post_silu, list(METHODS))
    fig = render("post_silu", post_silu, found)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in ax.lines}
    for method, r in found.items():
        line = next(v for k, v in lines.items() if k.startswith(f"{method} clip"))
        assert line.get_xdata()[0] == pytest.approx(r.clip)
        assert matplotlib.colors.to_hex(line.get_color()) == matplotlib.colors.to_hex(COLORS[method])
    asym = next(v for k, v in lines.items() if k.startswith("uh asymmetric"))
    assert asym.get_xdata()[0] == pytest.approx(found["uh"].lower) and asym.get_linestyle() == "--"
    assert any(p.get_label().startswith("SiLU band") for p in ax.patches)
    assert found["uh"].lower == pytest.approx(SILU_MIN, abs=1e-3)
    assert found["uh"].clip < found["minmax"].clip  # UH clips the thin tail that MinMax keeps
    png = png_bytes(render("post_silu", post_silu, {m: found[m] for m in ("uh", "minmax")}))
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (int(FIGSIZE[1] * DPI), int(FIGSIZE[0] * DPI), 3)
    assert len(png) > 10_000
    red = np.array([40, 39, 214])  # tab:red in BGR: UH's clip and asymmetric lines are really painted, top to bottom
    assert (np.abs(image.astype(int) - red).sum(axis=2) < 30).any(axis=1).sum() > 250


def test_cli_paper_figure(yolov5n_onnx, coco_dir, tmp_path):
    proc = run_cli("plot-hist", yolov5n_onnx, "--images", coco_dir / "images", "--num-images", "2", "--tensor", "/model.21/conv/Conv",
                   "--methods", "uh,minmax,percentile", "-o", tmp_path, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (plot,) = json.loads(proc.stdout)["plots"]
    assert plot["tensor"] == "/model.20/cv3/act/Mul_output_0"  # the conv's input, post-SiLU
    assert plot["min"] == pytest.approx(SILU_MIN, abs=1e-3)
    assert set(plot["ranges"]) == {"uh", "minmax", "percentile"}
    assert plot["ranges"]["minmax"]["clip"] == pytest.approx(plot["max"])
    assert cv2.imread(plot["png"]) is not None


def test_cli_bad_input(yolov5n_onnx, tmp_path):
    assert_clean_error(run_cli("plot-hist", yolov5n_onnx, "--tensor", "nope", "-o", tmp_path), "nope")
    assert_clean_error(run_cli("plot-hist", yolov5n_onnx, "-o", tmp_path), "--top")
    assert not list(tmp_path.iterdir())
