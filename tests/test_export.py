"""`export`: Ultralytics YAML/.pt -> ONNX matches Ultralytics' PyTorch outputs; .onnx validation; classic yolov5 .pt."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, run_cli
from onnx import numpy_helper

from qyolo_trt.data import letterbox, read_image, to_tensor
from qyolo_trt.errors import DependencyError, QyoloError
from qyolo_trt.export import export
from qyolo_trt.model import load_detector

ULTRALYTICS_MODELS = ("yolov8n", "yolo11n", "yolov5nu")


@pytest.fixture(scope="module")
def ultralytics():
    pytest.importorskip("torch", reason="export extra not installed (tools/install_export.sh)")
    return pytest.importorskip("ultralytics", reason="export extra not installed (tools/install_export.sh)")


@pytest.fixture(scope="module")
def bus_input(bus_jpg) -> np.ndarray:
    """bus.jpg letterboxed to 640: a real image, 1x3x640x640."""
    return to_tensor(letterbox(read_image(bus_jpg), (640, 640))[0])[None]


@pytest.fixture(scope="module")
def exported(ultralytics, bus_input, tmp_path_factory):
    """Each YAML model exported once (seed 0) with its Ultralytics PyTorch output on bus.jpg (same seed, unfused)."""
    import torch

    out_dir = tmp_path_factory.mktemp("export")
    models = {}
    for name in ULTRALYTICS_MODELS:
        result = export(f"{name}.yaml", out_dir / f"{name}.onnx")
        torch.manual_seed(0)
        yolo = ultralytics.YOLO(f"{name}.yaml")
        with torch.no_grad():
            reference = yolo.model.eval()(torch.from_numpy(bus_input))[0].numpy()
        models[name] = (result, yolo, reference)
    return models


def ort_run(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x})[0]


def assert_matches_pytorch(onnx_out: np.ndarray, reference: np.ndarray) -> None:
    """Boxes (pixels, up to 640) within 1e-3 px; class scores within 1% of their largest value."""
    assert onnx_out.shape == reference.shape
    box_err = np.abs(onnx_out[:, :4] - reference[:, :4]).max()
    cls_err = np.abs(onnx_out[:, 4:] - reference[:, 4:]).max()
    assert box_err < 1e-3, box_err
    assert cls_err < 1e-2 * np.abs(reference[:, 4:]).max(), cls_err


@pytest.mark.parametrize("name", ULTRALYTICS_MODELS)
def test_yaml_export_matches_ultralytics_pytorch(exported, bus_input, name):
    result, _, reference = exported[name]
    assert result.exporter == "ultralytics"
    assert result.info.layout == "anchor_free" and result.info.num_classes == 80
    assert result.info.output_shape == [1, 84, 8400] and not result.info.dynamic_batch
    assert_matches_pytorch(ort_run(result.output, bus_input), reference)


def test_yaml_export_reproduces_shared_structure_model(exported, structure_models):
    """Seed 0 + Ultralytics' exporter == how ../shared/data/structure/yolov8n.onnx was made: same graph, same weights."""
    ours, shared = onnx.load(str(exported["yolov8n"][0].output)), onnx.load(str(structure_models["yolov8n"]))
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in shared.graph.node]
    weights = {i.name: numpy_helper.to_array(i) for i in shared.graph.initializer}
    assert len(ours.graph.initializer) == len(weights)
    for init in ours.graph.initializer:
        np.testing.assert_array_equal(numpy_helper.to_array(init), weights[init.name])


def test_pt_export_dynamic_batch(exported, bus_input, tmp_path):
    """A saved Ultralytics checkpoint named like a classic one, exported with a symbolic batch, run at batch 2."""
    import torch

    _, yolo, _ = exported["yolo11n"]
    pt = tmp_path / "yolov5n.pt"  # Ultralytics would rename this to yolov5nu.pt and try to download it
    yolo.save(pt)
    result = export(pt, tmp_path / "dyn.onnx", dynamic_batch=True)
    assert result.info.dynamic_batch and result.info.output_shape == ["batch", 84, 8400]
    x = np.concatenate([bus_input, bus_input[..., ::-1].copy()])
    with torch.no_grad():
        reference = yolo.model.eval()(torch.from_numpy(x))[0].numpy()
    assert_matches_pytorch(ort_run(result.output, x), reference)


def test_export_rejects_non_multiple_of_32(ultralytics, tmp_path):
    with pytest.raises(QyoloError, match="multiple of 32"):
        export("yolov8n.yaml", tmp_path / "x.onnx", imgsz=630)
    assert not list(tmp_path.iterdir())


def test_missing_ultralytics_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    with pytest.raises(DependencyError, match=r"pip install --no-deps ultralytics==8\.4\.190 torchvision==0\.28\.0"):
        export("yolov8n.yaml", tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_cli_validates_classic_yolov5_onnx(yolov5n_onnx, tmp_path):
    out = tmp_path / "copy.onnx"
    proc = run_cli("export", yolov5n_onnx, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["layout"], result["num_classes"], result["output_shape"]) == ("anchor_based", 80, [1, 25200, 85])
    assert result["exporter"] == "validated" and out.read_bytes() == yolov5n_onnx.read_bytes()
    _, info = load_detector(out)
    assert info.imgsz == (640, 640)


def test_cli_onnx_input_refuses_options_it_cannot_apply(yolov5n_onnx, tmp_path):
    proc = run_cli("export", yolov5n_onnx, "--dynamic-batch", "--imgsz", "320", "-o", tmp_path / "x.onnx")
    assert_clean_error(proc, "validated, not re-exported", "--imgsz 320", "--dynamic-batch")
    assert not list(tmp_path.iterdir())


def test_cli_classic_yolov5_pt_says_how_to_export(tmp_path):
    """Needs neither torch nor Ultralytics: the checkpoint's pickle is read without unpickling."""
    from conftest import shared_path

    pt = shared_path("weights/yolov5n.pt")
    proc = run_cli("export", pt, "-o", tmp_path / "x.onnx")
    assert_clean_error(proc, "classic ultralytics/yolov5", "export.py --weights yolov5n.pt --include onnx --opset 17")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("model.pt", b"not a zip archive", ("not a readable PyTorch checkpoint",)),
        ("model.tflite", b"\x00" * 16, ("unknown model format", ".tflite")),
    ],
)
def test_cli_export_bad_model_files(tmp_path, name, content, words):
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out.onnx"
    assert_clean_error(run_cli("export", src, "-o", out), *words)
    assert not out.exists()
