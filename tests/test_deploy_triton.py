"""`write_triton_repo`: config.pbtxt consistent with the engine sidecar, parsed back; model.plan a byte copy."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import parse_pbtxt

from qyolo_trt.deploy.triton import triton_config, write_triton_repo
from qyolo_trt.errors import QyoloError
from qyolo_trt.fileio import sha256_bytes

def _sidecar(**over: Any) -> dict[str, Any]:
    side = {
        "qyolo_trt_version": "0.1.0", "backend": "tensorrt", "backend_version": "10.8.0.43", "targets": ["sm89"],
        "gpu": "NVIDIA GeForce RTX 4090", "precision": "int8", "layout": "anchor_based",
        "inputs": [{"name": "images", "shape": [-1, 3, 640, 640], "dtype": "float32"}],
        "outputs": [{"name": "output0", "shape": [-1, 25200, 85], "dtype": "float32"}],
        "batch": {"min": 1, "opt": 4, "max": 8},
    }
    side.update(over)
    return side


NMS_OUTPUTS = [
    {"name": "num_dets", "shape": [1, 1], "dtype": "int32"},
    {"name": "det_boxes", "shape": [1, 100, 4], "dtype": "float32"},
    {"name": "det_scores", "shape": [1, 100], "dtype": "float32"},
    {"name": "det_classes", "shape": [1, 100], "dtype": "int32"},
]


@pytest.fixture()
def engine(tmp_path: Path) -> Path:
    p = tmp_path / "yolov5n_int8.engine"
    p.write_bytes(bytes(range(256)) * 64)  # a fake plan: only copied, never deserialised
    return p


def _tensor(cfg: dict[str, list[Any]], kind: str, name: str) -> dict[str, list[Any]]:
    return next(t for t in cfg[kind] if t["name"] == [name])


def test_dynamic_batch_engine(engine: Path, tmp_path: Path) -> None:
    side = _sidecar(engine_sha256=sha256_bytes(engine.read_bytes()))
    model_dir = write_triton_repo(engine, side, tmp_path / "repo")
    assert model_dir == tmp_path / "repo" / "yolov5n_int8"
    assert (model_dir / "1" / "model.plan").read_bytes() == engine.read_bytes()
    cfg = parse_pbtxt((model_dir / "config.pbtxt").read_text())
    assert cfg["name"] == ["yolov5n_int8"] and cfg["platform"] == ["tensorrt_plan"]
    assert cfg["max_batch_size"] == [side["batch"]["max"]]
    assert _tensor(cfg, "input", "images") == {"name": ["images"], "data_type": ["TYPE_FP32"], "dims": [3, 640, 640]}
    assert _tensor(cfg, "output", "output0") == {"name": ["output0"], "data_type": ["TYPE_FP32"], "dims": [25200, 85]}
    assert cfg["dynamic_batching"] == [{"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": [100]}]
    assert cfg["instance_group"] == [{"count": [1], "kind": ["KIND_GPU"]}]
    assert sorted(p.relative_to(tmp_path / "repo").as_posix() for p in (tmp_path / "repo").rglob("*")) == [
        "yolov5n_int8", "yolov5n_int8/1", "yolov5n_int8/1/model.plan", "yolov5n_int8/config.pbtxt",
    ]


def test_static_nms_engine_has_no_batching(engine: Path, tmp_path: Path) -> None:
    side = _sidecar(
        inputs=[{"name": "images", "shape": [1, 3, 640, 640], "dtype": "DataType.FLOAT"}],
        outputs=NMS_OUTPUTS, batch={"min": 1, "opt": 1, "max": 1}, layout="nms",
    )
    cfg = parse_pbtxt((write_triton_repo(engine, side, tmp_path, model_name="det") / "config.pbtxt").read_text())
    assert cfg["name"] == ["det"] and cfg["max_batch_size"] == [0] and "dynamic_batching" not in cfg
    assert _tensor(cfg, "input", "images")["dims"] == [1, 3, 640, 640]
    got = [(t["name"][0], t["data_type"][0], t["dims"]) for t in cfg["output"]]
    assert got == [
        ("num_dets", "TYPE_INT32", [1, 1]), ("det_boxes", "TYPE_FP32", [1, 100, 4]),
        ("det_scores", "TYPE_FP32", [1, 100]), ("det_classes", "TYPE_INT32", [1, 100]),
    ]


@pytest.mark.parametrize("opt, max_, preferred", [(1, 1, None), (1, 16, [16]), (8, 8, [8]), (2, 4, [2, 4])])
def test_preferred_batch_sizes_follow_the_profile(opt: int, max_: int, preferred: list[int] | None) -> None:
    cfg = parse_pbtxt(triton_config(_sidecar(batch={"min": 1, "opt": opt, "max": max_}), "m"))
    assert cfg["max_batch_size"] == [max_]
    got = cfg["dynamic_batching"][0]["preferred_batch_size"] if "dynamic_batching" in cfg else None
    assert got == preferred


def test_config_rewrite_replaces_previous(engine: Path, tmp_path: Path) -> None:
    write_triton_repo(engine, _sidecar(), tmp_path)
    write_triton_repo(engine, _sidecar(batch={"min": 1, "opt": 2, "max": 2}), tmp_path)
    cfg = parse_pbtxt((tmp_path / engine.stem / "config.pbtxt").read_text())
    assert cfg["max_batch_size"] == [2]
    assert not [p for p in (tmp_path / engine.stem).rglob("*.tmp")]


def _mixed_batch() -> dict[str, Any]:
    side = _sidecar()
    side["outputs"] = copy.deepcopy(NMS_OUTPUTS)
    return side


@pytest.mark.parametrize(
    "side, name, words",
    [
        (_sidecar(backend="tensorrt-rtx"), None, ("tensorrt-rtx", "--backend tensorrt")),
        (_sidecar(engine_sha256="0" * 64), None, ("stale sidecar",)),
        (_sidecar(batch={"min": 2, "opt": 4, "max": 8}), None, ("min is 2", "--min-batch 1")),
        (_sidecar(inputs=[{"name": "images", "shape": [1, 3, 640, 640], "dtype": "float32"}],
                  outputs=NMS_OUTPUTS, batch={"min": 1, "opt": 4, "max": 8}), None, ("static-shape",)),
        (_mixed_batch(), None, ("dynamic batch dimension and some do not",)),
        (_sidecar(outputs=[{"name": "output0", "shape": [-1, 25200, 85], "dtype": "complex64"}]), None, ("complex64",)),
        (_sidecar(outputs=[]), None, ("no outputs",)),
        (_sidecar(), "../escape", ("model name",)),
    ],
)
def test_refusals_write_nothing(engine: Path, tmp_path: Path, side: dict[str, Any], name: str | None, words: tuple[str, ...]) -> None:
    repo = tmp_path / "repo"
    with pytest.raises(QyoloError) as exc:
        write_triton_repo(engine, side, repo, model_name=name)
    assert all(w.lower() in str(exc.value).lower() for w in words), exc.value
    assert not repo.exists()


def test_missing_engine_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(QyoloError, match="no such engine"):
        write_triton_repo(tmp_path / "nope.engine", _sidecar(), tmp_path / "repo")
