"""Layer sensitivity, shared-scale units and automatic float fallback on small hand-built graphs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, run_cli
from qdq_graphs import fragile_detector, observed_scales, tiny_detector

from qyolo_trt.analysis import layer_sensitivity, load_feeds, quantized_units
from qyolo_trt.defaults import default_calib
from qyolo_trt.qdq import REPORT_KEY, QuantizeConfig, quantize
from qyolo_trt.qdq.passes.fallback import smallest_reaching
from qyolo_trt.qdq.pipeline import run

FALLBACK_IMAGES = 3
@pytest.fixture(scope="module")
def fragile():
    model = fragile_detector()
    feeds = load_feeds(model, default_calib(), FALLBACK_IMAGES)
    return model, observed_scales(model, feeds[0]), feeds


@pytest.fixture(scope="module")
def ranking(fragile):
    model, scales, feeds = fragile
    return layer_sensitivity(model, scales, feeds)


def fallback_config(**fallback) -> QuantizeConfig:
    """The sensitivity rewrite (symmetric) with a float fallback measured on the ranking's images."""
    return QuantizeConfig(mode="symmetric", fallback_images=default_calib(), fallback_num_images=FALLBACK_IMAGES, **fallback)


def test_fallback_ranks_when_not_given_a_ranking(fragile, ranking):
    model, scales, _ = fragile
    fresh = run(model, scales, fallback_config(fallback_k=1))
    reused = run(model, scales, fallback_config(fallback_k=1), ranking=ranking)
    assert fresh.model.SerializeToString() == reused.model.SerializeToString()


def test_fragile_layer_ranks_first(ranking):
    names = [s.unit.nodes for s in ranking.scores]
    assert sorted(names) == [("cv1/Conv",), ("cv2/Conv",), ("cv3/Conv",), ("stem/Conv",)]  # head conv stays float
    assert names[0] == ("cv2/Conv",)
    scores = [s.score for s in ranking.scores]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 10 * scores[1]  # the outlier makes it fragile by far
    assert ranking.scores[0].damage.sqnr_db < ranking.scores[1].damage.sqnr_db
    assert ranking.full.sqnr_db <= ranking.scores[0].damage.sqnr_db + 0.5  # all together is no better than the worst alone
    assert ranking.outputs == ["head_out"]


def test_cosine_metric_agrees_on_the_fragile_layer(fragile):
    model, scales, feeds = fragile
    result = layer_sensitivity(model, scales, feeds[:1], metric="cosine")
    assert result.scores[0].unit.nodes == ("cv2/Conv",)
    assert 0 < result.scores[0].score <= 2


def test_concat_pool_resize_groups_are_one_unit():
    model = tiny_detector()
    scales = observed_scales(model, {"images": np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)})
    units = quantized_units(quantize(model, scales).model)
    assert [u.nodes for u in units] == [
        ("stem/Conv",), ("cv1/Conv",), ("res",), ("pool1", "pool2", "cat"), ("cv2/Conv",), ("cv3/Conv",), ("up",), ("cv4/Conv",)
    ]
    assert units[3].ops == ("MaxPool", "MaxPool", "Concat")


def test_auto_fallback_keeps_the_fragile_layer_float(fragile, ranking):
    model, scales, _ = fragile
    result = run(model, scales, fallback_config(fallback_k=1), ranking=ranking)
    fb = result.report["fallback"]
    assert fb["k"] == 1 and fb["layers"][0]["nodes"] == ["cv2/Conv"] and fb["policy"] == "top-k"
    reasons = {e["node"]: e["reason"] for e in result.report["float_nodes"]}
    assert reasons["cv2/Conv"].startswith("fallback: sensitivity rank 1")
    assert fb["sqnr_db"] > ranking.full.sqnr_db + 10  # removing the fragile layer recovers most of the signal
    stored = json.loads({p.key: p.value for p in result.model.metadata_props}[REPORT_KEY])
    assert stored["fallback"]["layers"][0]["unit"] == "cv2/Conv"
    dq_inputs = {n.output[0] for n in result.model.graph.node if n.op_type == "DequantizeLinear"}
    cv2 = next(n for n in result.model.graph.node if n.name == "cv2/Conv")
    assert not any(i in dq_inputs for i in cv2.input)  # really float


def test_fallback_budget_picks_the_fewest_layers(fragile, ranking):
    model, scales, _ = fragile
    one = run(model, scales, fallback_config(fallback_k=1), ranking=ranking).report["fallback"]["sqnr_db"]
    result = run(model, scales, fallback_config(fallback_db=one - 0.01), ranking=ranking)
    fb = result.report["fallback"]
    assert fb["policy"] == "sqnr-budget" and fb["k"] == 1 and fb["sqnr_db"] == pytest.approx(one)
    assert [t["k"] for t in fb["trials"]] == [0, 1]


def test_smallest_reaching_bisects():
    calls = []

    def sqnr(k: int) -> float:
        calls.append(k)
        return 10.0 * k

    assert smallest_reaching(sqnr, 35.0, 60) == 4
    assert len(set(calls)) <= 6
    assert smallest_reaching(lambda k: 10.0 * k, 1000.0, 60) == 60
    assert smallest_reaching(lambda k: 50.0, 40.0, 60) == 0


def test_cli_sensitivity_and_quantize_fallback(fragile, tmp_path):
    model, scales, _ = fragile
    onnx.save(model, tmp_path / "tiny.onnx")
    scales.save(tmp_path / "scales.json")
    images = default_calib()
    proc = run_cli("sensitivity", tmp_path / "tiny.onnx", "--scales", tmp_path / "scales.json", "--images", images, "--num-images", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ranking"][0]["nodes"] == ["cv2/Conv"] and out["num_images"] == 2
    qdq = tmp_path / "fb.onnx"
    proc = run_cli("quantize", tmp_path / "tiny.onnx", "--scales", tmp_path / "scales.json", "--auto-fallback", "1",
                   "--fallback-images", images, "--fallback-num-images", "2", "-o", qdq, "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report"]["fallback"]["layers"][0]["nodes"] == ["cv2/Conv"]
    assert qdq.is_file()


def test_cli_bad_input(tmp_path):
    assert_clean_error(run_cli("sensitivity", "--scales", tmp_path / "missing.json"), "no such file")
    out = tmp_path / "x.onnx"
    proc = run_cli("quantize", "--images", default_calib(), "--num-images", "1", "--auto-fallback", "1", "--fallback-budget", "30", "-o", out)
    assert_clean_error(proc, "at most one", "--auto-fallback")
    assert not out.exists()
