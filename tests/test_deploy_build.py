"""`build --triton-repo` through the build pipeline: the TensorRT 10 double (standard TensorRT) and real TensorRT-RTX."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
from deploy_helpers import dynamic_detector, parse_pbtxt
from trt_doubles import install_doubles

from qyolo_trt.pipeline import BuildRequest, run_build
from qyolo_trt.errors import QyoloError
from qyolo_trt.fileio import sha256_file

TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int32": "TYPE_INT32", "int8": "TYPE_INT8"}


def assert_config_matches_sidecar(cfg: dict[str, list[Any]], sidecar: dict[str, Any]) -> None:
    """Every engine tensor appears with its dtype and its shape less the batch axis; batching follows the profile."""
    batch = sidecar["batch"]
    assert cfg["max_batch_size"] == [batch["max"]]
    for kind, tensors in (("input", sidecar["inputs"]), ("output", sidecar["outputs"])):
        got = [(t["name"][0], t["data_type"][0], t["dims"]) for t in cfg[kind]]
        assert got == [(t["name"], TRITON_TYPES[t["dtype"]], t["shape"][1:]) for t in tensors]
        assert all(t["shape"][0] == -1 for t in tensors)
    assert cfg["dynamic_batching"][0]["preferred_batch_size"] == sorted({batch["opt"], batch["max"]} - {1})


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.onnx"
    onnx.save(dynamic_detector(), path)
    return path


def test_tensorrt_build_writes_a_consistent_triton_repo(monkeypatch, tiny: Path, tmp_path: Path) -> None:
    install_doubles(monkeypatch, 10)
    engine = tmp_path / "engines" / "tiny.engine"
    result = run_build(BuildRequest(model=tiny, precision="fp32", backend="tensorrt", batch=(1, 4, 8), output=engine,
                                    triton_repo=tmp_path / "repo", model_name="detector"))
    assert result["triton"] == [str(tmp_path / "repo" / "detector")]
    sidecar = json.loads(Path(f"{engine}.json").read_text())
    assert sidecar["backend"] == "tensorrt" and sidecar["batch"] == {"min": 1, "opt": 4, "max": 8}
    cfg = parse_pbtxt((tmp_path / "repo" / "detector" / "config.pbtxt").read_text())
    assert cfg["name"] == ["detector"] and cfg["platform"] == ["tensorrt_plan"]
    assert_config_matches_sidecar(cfg, sidecar)
    assert sha256_file(tmp_path / "repo" / "detector" / "1" / "model.plan") == sidecar["engine_sha256"] == sha256_file(engine)


def test_tensorrt_rtx_build_refuses_triton_before_writing(tiny: Path, tmp_path: Path) -> None:
    """Triton's tensorrt_plan backend cannot load TensorRT-RTX engines: refused, and the build writes nothing."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed (pip install 'qyolo-trt[rtx]')")
    engines = tmp_path / "engines"
    with pytest.raises(QyoloError, match="--backend tensorrt"):
        run_build(BuildRequest(model=tiny, precision="fp32", backend="tensorrt-rtx", gpus=("sm89",), output=engines / "tiny.engine",
                               triton_repo=tmp_path / "repo"))
    assert not engines.exists() and not (tmp_path / "repo").exists()
