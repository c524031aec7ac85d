"""TrtRunner through the doubles (fake TensorRT 10/11 + fake cuda-python): the H2D -> execute_async_v3 -> D2H loop,
sidecar refusals, and the no-GPU path (in-process and via the CLI, before any TensorRT runtime exists)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from conftest import REPO, assert_clean_error, run_cli
from qyolo_trt.backends import get_runner
from qyolo_trt.backends.tensorrt.builder import build_engine
from qyolo_trt.backends.tensorrt.sidecar import describe_engine, make_sidecar, sidecar_path
from qyolo_trt.pipeline import BuildRequest, run_build
from qyolo_trt.data import ImageLoader, list_images
from qyolo_trt.defaults import default_calib, default_model
from qyolo_trt.errors import DependencyError, QyoloError
from qyolo_trt.fileio import write_bytes_atomic, write_json_atomic
from trt_doubles import install_doubles
from trt_doubles.tiny import tiny_model


@pytest.fixture
def yolo_engine(monkeypatch, tmp_path):
    """An FP32 yolov5n engine built by the TensorRT 10 double for the (fake) local H100."""
    trt, cudart = install_doubles(monkeypatch, 10)
    out = tmp_path / "yolov5n.engine"
    result = run_build(BuildRequest(precision="fp32", backend="tensorrt", output=out))
    assert result["engines"][0]["targets"] == ["sm90"]
    return out, trt, cudart


def test_runner_matches_onnxruntime_and_frees_everything(yolo_engine):
    path, trt, cudart = yolo_engine
    batch = next(iter(ImageLoader(list_images(default_calib(), limit=1), imgsz=(640, 640))))
    with get_runner("ort", default_model()) as ort_runner:
        want = ort_runner.infer({"images": batch.images})["output0"]
    with get_runner("trt", path) as runner:
        assert runner.input_name == "images" and runner.output_names == ["output0"]
        got = runner.infer({"images": batch.images})["output0"]
        assert runner.describe()["targets"] == ["sm90"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert cudart.copies == [(1, batch.images.nbytes), (2, want.nbytes)]  # one H2D, one D2H
    assert cudart.memory == {} and cudart.streams == set()  # pinned + device buffers and the stream released
    assert trt.stats["runtimes"] == 2  # one for the build report (inspector), one for the runner


def test_dynamic_batch_runs_within_the_profile(monkeypatch, tmp_path):
    install_doubles(monkeypatch, 11)
    model = tmp_path / "tiny.qdq.onnx"
    onnx.save(tiny_model(), model)
    out = tmp_path / "tiny.engine"
    res = build_engine(model, backend="tensorrt", targets=("sm90",), batch=(1, 2, 4))
    write_bytes_atomic(out, res.engine)
    write_json_atomic(sidecar_path(out), make_sidecar(res))
    x = np.random.default_rng(1).random((3, 3, 8, 8), dtype=np.float32)
    with get_runner("ort", model) as ref:
        want = ref.infer({"x": x})["y"]
    with get_runner("trt", out) as runner:
        np.testing.assert_allclose(runner.infer({"x": x})["y"], want, rtol=1e-5, atol=1e-5)
        with pytest.raises(QyoloError, match="outside the engine's profile"):
            runner.infer({"x": np.zeros((5, 3, 8, 8), np.float32)})


def test_engine_for_another_gpu_is_refused_before_deserialising(yolo_engine, monkeypatch):
    path, _, _ = yolo_engine
    trt, _ = install_doubles(monkeypatch, 10, devices=(("NVIDIA GeForce RTX 4090", 8, 9),))
    with pytest.raises(QyoloError, match=r"built with tensorrt 10\.13\.3\.9 for sm90 .*RTX 4090 \(sm89\).*rebuild it here with: .*--gpu sm89"):
        get_runner("trt", path).activate()
    assert trt.stats["runtimes"] == 0


def test_engine_from_another_tensorrt_version_is_refused(yolo_engine, monkeypatch):
    path, _, _ = yolo_engine
    trt, _ = install_doubles(monkeypatch, 10, version="10.14.1.48")
    with pytest.raises(QyoloError, match=r"10\.13\.3\.9.*this machine has tensorrt 10\.14\.1\.48"):
        get_runner("trt", path).activate()
    assert trt.stats["runtimes"] == 0


def test_modified_engine_is_refused(yolo_engine):
    path, _, _ = yolo_engine
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(QyoloError, match="does not match its sidecar"):
        describe_engine(path)  # inspect refuses it too
    with pytest.raises(QyoloError, match="does not match its sidecar"):
        get_runner("trt", path).activate()


def test_missing_sidecar_and_no_gpu(yolo_engine, monkeypatch):
    path, _, _ = yolo_engine
    trt, _ = install_doubles(monkeypatch, 10, devices=())
    with pytest.raises(DependencyError, match="no CUDA GPU available"):
        get_runner("trt", path).activate()
    assert trt.stats["runtimes"] == 0
    Path(f"{path}.json").unlink()
    with pytest.raises(QyoloError, match="no sidecar yolov5n.engine.json"):
        get_runner("trt", path).activate()


def test_cli_without_gpu_says_so_in_one_line(tmp_path):
    """Real cuda-python with no driver + the TensorRT 10 double as `tensorrt`: exit 2 before building anything."""
    from cuda.bindings import runtime as cudart

    err, count = cudart.cudaGetDeviceCount()
    if int(err) == 0 and count:
        pytest.skip("this machine has a GPU")
    site = os.pathsep.join([str(REPO / "tests" / "trt_doubles" / "site"), str(REPO / "tests")])
    proc = run_cli("build", "--backend", "tensorrt", "--precision", "fp32", "-o", tmp_path / "e" / "x.engine",
                   env={"PYTHONPATH": site})
    assert_clean_error(proc, "no CUDA GPU available", "cudaErrorInsufficientDriver")
    assert not (tmp_path / "e").exists()


def test_nms_engine_loads_in_a_fresh_process(monkeypatch, tmp_path):
    """EfficientNMS_TRT: the plugins are registered before parsing and again before deserialising in a new process."""
    from deploy_helpers import dynamic_detector

    install_doubles(monkeypatch, 10)
    model = tmp_path / "det.onnx"
    onnx.save(dynamic_detector(), model)
    out = tmp_path / "det.engine"
    run_build(BuildRequest(model=model, precision="fp32", backend="tensorrt", batch=(1, 2, 4), output=out,
                           nms={"score_threshold": 0.25, "iou_threshold": 0.45, "max_det": 100}))
    fresh, _ = install_doubles(monkeypatch, 10)  # a new process: nothing registered yet
    assert not fresh.stats["plugins"]
    with get_runner("trt", out) as runner:
        assert runner.output_names == ["num_dets", "det_boxes", "det_scores", "det_classes"]
    assert fresh.stats["plugins"]


def test_runner_allocates_on_the_device_it_checked(monkeypatch, tmp_path):
    """``device=1``: the GPU whose properties were checked is made current before any buffer or stream exists."""
    h100 = ("NVIDIA H100 80GB HBM3", 9, 0)
    _, cudart = install_doubles(monkeypatch, 11, devices=(h100, h100))
    model = tmp_path / "tiny.qdq.onnx"
    onnx.save(tiny_model(), model)
    out = tmp_path / "tiny.engine"
    res = build_engine(model, backend="tensorrt", targets=("sm90",))
    write_bytes_atomic(out, res.engine)
    write_json_atomic(sidecar_path(out), make_sidecar(res))
    with get_runner("trt", out, device=1) as runner:
        assert cudart.current == 1
        assert cudart.memory and {cudart.placement[a] for a in cudart.memory} == {1}
        runner.infer({runner.input_name: np.zeros((1, 3, 8, 8), np.float32)})
