"""`qyolo-trt build` end to end (CLI, real TensorRT-RTX): outputs, sidecar schema, stage reuse, and failures
that leave nothing behind."""

from __future__ import annotations

import json

import pytest

from conftest import assert_clean_error, run_cli

pytest.importorskip("tensorrt_rtx")

from qyolo_trt import pipeline as build_mod  # noqa: E402
from qyolo_trt.pipeline import BuildRequest, run_build  # noqa: E402
from qyolo_trt.errors import QyoloError  # noqa: E402

SIDECAR_KEYS = {"qyolo_trt_version", "backend", "backend_version", "targets", "gpu", "precision", "inputs", "outputs", "batch",
                "layout", "model_hash", "scales_hash", "options", "report", "engine_sha256"}


@pytest.fixture(scope="module")
def cli_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "engines" / "v5n.engine"
    proc = run_cli("build", "--gpu", "rtx4090", "--num-images", "2", "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_cli_builds_one_int8_engine_with_its_sidecar(cli_build):
    out, result = cli_build
    assert result["backend"] == "tensorrt-rtx" and len(result["engines"]) == 1
    engine = result["engines"][0]
    assert engine["engine"] == str(out) and engine["targets"] == ["sm89"] and engine["precision"] == "int8"
    assert (engine["conv_int8"], engine["conv_total"], len(engine["float_convs"])) == (57, 60, 3)
    sidecar = json.loads(out.with_name("v5n.engine.json").read_text())
    assert set(sidecar) == SIDECAR_KEYS
    assert sidecar["options"]["method"] == "uh" and sidecar["options"]["mode"] == "shifted"
    assert sidecar["options"]["bias_correction"] is True
    assert result["artifacts"] == {"scales": str(out.with_name("v5n.uh.scales.json")), "qdq_onnx": str(out.with_name("v5n.qdq.onnx"))}


def test_qdq_model_skips_calibration(cli_build, tmp_path):
    out, _ = cli_build
    res = run_build(BuildRequest(model=out.with_name("v5n.qdq.onnx"), gpus=("sm86",), output=tmp_path / "q.engine"))
    assert res["artifacts"] == {} and res["engines"][0]["conv_int8"] == 57
    assert json.loads((tmp_path / "q.engine.json").read_text())["scales_hash"] is None
    with pytest.raises(QyoloError, match="no INT8 kernels for sm75"):  # no FP32 model to fall back to FP16 for Turing
        run_build(BuildRequest(model=out.with_name("v5n.qdq.onnx"), gpus=("t4",), output=tmp_path / "t4.engine"))


def test_failed_second_engine_leaves_nothing(monkeypatch, tmp_path):
    """The sm89 engine builds, the sm75 one fails: no engine, sidecar, scales or QDQ file is written."""
    real, calls = build_mod.build_engine, []

    def flaky(*args, **kwargs):
        calls.append(kwargs["targets"])
        if len(calls) == 2:
            raise QyoloError("simulated builder failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(build_mod, "build_engine", flaky)
    out = tmp_path / "engines" / "y.engine"
    with pytest.raises(QyoloError, match="simulated"):
        run_build(BuildRequest(num_images=1, output=out))
    assert calls == [("sm89",), ("sm75",)]
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_cli_late_failure_leaves_nothing(tmp_path):
    """Calibrated, quantized and built, then refused (Triton cannot load TensorRT-RTX engines): nothing written."""
    engines = tmp_path / "engines"
    proc = run_cli("build", "--gpu", "sm89", "--num-images", "1", "-o", engines / "z.engine", "--triton-repo", tmp_path / "repo")
    assert_clean_error(proc, "--backend tensorrt")
    assert not engines.exists() and not (tmp_path / "repo").exists()


@pytest.mark.parametrize("args, words", [
    (["missing.onnx"], ["missing.onnx", "no such file"]),
    (["--gpu", "gtx9000"], ["unknown GPU 'gtx9000'"]),
    (["--batch", "2", "--max-batch", "4"], ["either --batch"]),
    (["--max-batch", "4"], ["static batch of 1"]),
    (["--nms", "--backend", "tensorrt-rtx"], ["EfficientNMS_TRT", "--backend tensorrt"]),
    (["--gpu", "h100", "--backend", "tensorrt-rtx"], ["cannot target sm90"]),
])
def test_bad_input_is_one_line(tmp_path, args, words):
    proc = run_cli("build", *args, "-o", tmp_path / "e" / "x.engine")
    assert_clean_error(proc, *words)
    assert not (tmp_path / "e").exists()
