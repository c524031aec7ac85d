"""`qyolo-trt quantize` and `qyolo-trt inspect` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, run_cli
from qdq_graphs import observed_scales, tiny_detector

from qyolo_trt.calib.scales import write_trt_cache
from qyolo_trt.defaults import default_calib
from qyolo_trt.fileio import sha256_bytes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A hand-built detector-like model and its scales file."""
    d = tmp_path_factory.mktemp("tiny")
    model = tiny_detector()
    onnx.save(model, d / "tiny.onnx")
    observed_scales(model, {"images": np.random.default_rng(3).random((1, 3, 16, 16), dtype=np.float32)}).save(d / "tiny.scales.json")
    return d / "tiny.onnx", d / "tiny.scales.json"


def test_quantize_then_inspect(tiny, tmp_path):
    model, scales = tiny
    out = tmp_path / "tiny.qdq.onnx"
    proc = run_cli("quantize", model, "--scales", scales, "--keep-float", "first-conv,head", "--json", "-o", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["report"]
    assert report["quantized"] == {"Add": 1, "Concat": 1, "Conv": 4, "MaxPool": 2, "Resize": 1}
    assert {e["node"]: e["reason"] for e in report["float_nodes"]} == {"stem/Conv": "first-conv", "head/Conv": "head"}
    proc = run_cli("inspect", out, "--strict", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["quantized_ops"] == report["quantized"] and info["lint"] == [] and info["report"] == report
    assert info["qdq"] == {"QuantizeLinear": 9, "DequantizeLinear": 9 + 4}  # 9 activation tensors, 4 quantized weights
    text = run_cli("inspect", out).stdout
    assert "lint: clean" in text and "head/Conv (Conv): head" in text


def test_asymmetric_output_fails_strict_lint(tiny, tmp_path):
    model, scales = tiny
    out = tmp_path / "tiny.asym.onnx"
    assert run_cli("quantize", model, "--scales", scales, "--mode", "asymmetric", "-o", out).returncode == 0
    proc = run_cli("inspect", out, "--strict")
    assert proc.returncode == 1 and "error zero-point" in proc.stdout
    assert run_cli("inspect", out).returncode == 0  # without --strict the lint only reports


def test_quantize_from_tensorrt_calibration_cache(tiny, tmp_path):
    model, scales = tiny
    cache = tmp_path / "calib.cache"
    tensors = json.loads(scales.read_text())["tensors"]
    write_trt_cache(cache, {k: v["scale"] for k, v in tensors.items()})
    out = tmp_path / "from_cache.onnx"
    proc = run_cli("quantize", model, "--calib-cache", cache, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["report"]["quantized"]["Conv"] == 5 and out.is_file()


def test_quantize_calibrates_the_embedded_model(tmp_path):
    out = tmp_path / "v5n.qdq.onnx"
    proc = run_cli("quantize", "--images", default_calib(), "--num-images", "2", "--mode", "shifted", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["report"]
    assert report["method"] == "uh" and report["quantized"]["Conv"] == 57 and len(report["shifted"]) == 24
    padded = tmp_path / "v5n_pad.qdq.onnx"
    proc = run_cli("quantize", "--images", default_calib(), "--num-images", "2", "--shift-padded", "-o", padded, "--json")
    assert proc.returncode == 0, proc.stderr
    # and the 13 tensors read only by padded convs (the image input excepted), each through a Pad; lint stays clean
    assert len(json.loads(proc.stdout)["report"]["shifted"]) == 37
    assert sum(n.op_type == "Pad" for n in onnx.load(padded).graph.node) == 13
    assert run_cli("inspect", padded, "--strict").returncode == 0


def test_bad_input_is_one_clean_line(tiny, tmp_path, structure_models):
    model, scales = tiny
    out = tmp_path / "never.onnx"
    assert_clean_error(run_cli("quantize", model, "-o", out), "exactly one of")
    assert_clean_error(run_cli("quantize", structure_models["yolov8n"], "--scales", scales, "-o", out), "not this model")
    data = json.loads(scales.read_text())
    del data["tensors"]["cat_out"]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(data))
    assert_clean_error(run_cli("quantize", model, "--scales", partial, "-o", out), "no scale for 1 tensor(s): cat_out")
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    proc = run_cli("quantize", model, "--scales", partial, "--allow-missing", "-o", out, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["report"]["missing"] == ["cat_out"]
    assert_clean_error(run_cli("inspect", scales), "expected an .onnx model or an .engine")


def test_inspect_engine_reads_its_sidecar(tmp_path):
    """An .engine is described from NAME.engine.json (no TensorRT needed); the bytes are checked against its hash."""
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan bytes")
    io = [{"name": "images", "shape": [1, 3, 640, 640], "dtype": "float32"}]
    sidecar = {"backend": "tensorrt-rtx", "backend_version": "1.7", "targets": ["sm89"], "precision": "int8", "gpu": None,
               "inputs": io, "outputs": [{**io[0], "name": "output0"}], "engine_sha256": sha256_bytes(b"plan bytes")}
    engine.with_name("m.engine.json").write_text(json.dumps(sidecar))
    proc = run_cli("inspect", engine, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["engine_sha256_ok"] is True and info["targets"] == ["sm89"] and info["engine_bytes"] == 10
    assert "tensorrt-rtx 1.7, int8, targets sm89" in run_cli("inspect", engine).stdout
