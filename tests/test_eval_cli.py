"""`qyolo-trt eval` end to end: synthetic models that output their own ground truth (all three layouts),
the FP32 acceptance on the real yolov5n, FP32 agreement, and clean errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_clean_error, run_cli

H, W = 48, 64  # image size: letterboxed into 64x64 with ratio 1 and 8 px padding on top and bottom
IMGSZ = 64
ANCHORS = sum((IMGSZ // s) ** 2 for s in (8, 16, 32))  # 84
LABELS = "0 0.25 0.5 0.25 0.5\n2 0.75 0.25 0.5 0.25\n"  # class, cx, cy, w, h (normalised)
GT_XYXY = [[8, 12, 24, 36], [32, 6, 64, 18]]  # the same boxes in image pixels
GT_CLASSES = [0, 2]


def _constant_model(outputs: dict[str, np.ndarray]) -> onnx.ModelProto:
    """images [1,3,64,64] -> the given constant outputs (kept data-dependent with a zero-weighted input sum)."""
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_c"))
        if value.dtype == np.int32:
            nodes += [helper.make_node("Add", [f"{name}_c", "z"], [f"{name}_f"]), helper.make_node("Cast", [f"{name}_f"], [name], to=TensorProto.INT32)]
        else:
            nodes.append(helper.make_node("Add", [f"{name}_c", "z"], [name]))
        dtype = TensorProto.INT32 if value.dtype == np.int32 else TensorProto.FLOAT
        outs.append(helper.make_tensor_value_info(name, dtype, list(value.shape)))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IMGSZ, IMGSZ])], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _input_xyxy() -> np.ndarray:
    return np.array(GT_XYXY, np.float32) + [0, 8, 0, 8]  # letterbox: 8 px padding at the top


def _anchor_based_output(num_classes: int = 3) -> np.ndarray:
    out = np.zeros((1, ANCHORS, 5 + num_classes), np.float32)
    xyxy = _input_xyxy()
    out[0, :2, :2], out[0, :2, 2:4] = (xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]
    out[0, :2, 4] = 0.9
    out[0, [0, 1], [5 + c for c in GT_CLASSES]] = 0.95
    return out


def _anchor_based() -> onnx.ModelProto:
    return _constant_model({"output0": _anchor_based_output()})


def _anchor_free() -> onnx.ModelProto:
    based = _anchor_based_output()
    out = np.concatenate([based[..., :4], based[..., 5:] * based[..., 4:5]], -1).transpose(0, 2, 1)
    return _constant_model({"output0": out})


def _efficient_nms() -> onnx.ModelProto:
    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, :2] = _input_xyxy()
    scores = np.zeros((1, 10), np.float32)
    scores[0, :2] = [0.9, 0.8]
    classes = np.zeros((1, 10), np.int32)
    classes[0, :2] = GT_CLASSES
    return _constant_model({"num_dets": np.array([[2]], np.int32), "det_boxes": boxes, "det_scores": scores, "det_classes": classes})


@pytest.fixture
def own_gt_set(tmp_path):
    """Two 64x48 images with the labels the synthetic models reproduce."""
    for d in ("images", "labels"):
        (tmp_path / "set" / d).mkdir(parents=True)
    for stem in ("a", "b"):
        cv2.imwrite(str(tmp_path / "set" / "images" / f"{stem}.jpg"), np.full((H, W, 3), 90, np.uint8))
        (tmp_path / "set" / "labels" / f"{stem}.txt").write_text(LABELS)
    return tmp_path


@pytest.mark.parametrize("build", [_anchor_based, _anchor_free, _efficient_nms], ids=["anchor_based", "anchor_free", "nms"])
def test_model_on_its_own_ground_truth_scores_one(own_gt_set, build):
    model_path = own_gt_set / "m.onnx"
    onnx.save(build(), model_path)
    proc = run_cli("eval", model_path, "--data", own_gt_set / "set", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["images"] == 2 and r["map50_95"] == pytest.approx(1.0) and r["map50"] == pytest.approx(1.0)


def test_agreement_of_a_model_with_itself(own_gt_set):
    model_path = own_gt_set / "m.onnx"
    onnx.save(_anchor_based(), model_path)
    proc = run_cli("eval", model_path, "--data", own_gt_set / "set" / "images", "--reference", model_path, "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["agreement"] == pytest.approx(1.0) and r["sqnr_db"] == "inf" and r["sqnr_on"] == ["output0"]


def test_fp32_yolov5n_matches_the_reference_map(yolov5n_onnx, coco_dir):
    """yolov5's settings (conf 0.001, IoU 0.6, 300 detections) on the 96 shared images: 0.356 / 0.558."""
    proc = run_cli("eval", yolov5n_onnx, "--data", coco_dir / "instances.json", "--iou", "0.6", "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["images"] == 96
    assert abs(r["map50_95"] - 0.356) < 0.005 and abs(r["map50"] - 0.558) < 0.005


def test_eval_errors(tmp_path, own_gt_set):
    assert_clean_error(run_cli("eval", tmp_path / "missing.onnx", "--data", own_gt_set / "set"), "no such file")
    model_path = own_gt_set / "m.onnx"
    onnx.save(_anchor_based(), model_path)
    bare = tmp_path / "bare"
    bare.mkdir()
    cv2.imwrite(str(bare / "x.jpg"), np.zeros((8, 8, 3), np.uint8))
    assert_clean_error(run_cli("eval", model_path, "--data", bare), "no labels", "--reference")
    (tmp_path / "bad.json").write_text("{")
    assert_clean_error(run_cli("eval", model_path, "--data", tmp_path / "bad.json"), "coco json")


def test_engine_layout_comes_from_its_sidecar(tmp_path, own_gt_set):
    import hashlib

    from qyolo_trt.eval.artifact import artifact_info

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not a real engine")
    sidecar = {
        "layout": "anchor_free", "backend": "tensorrt-rtx", "backend_version": "1.7", "targets": ["sm89"], "precision": "int8",
        "engine_sha256": hashlib.sha256(engine.read_bytes()).hexdigest(),
        "inputs": [{"name": "images", "shape": [1, 3, 320, 480], "dtype": "float32"}],
        "outputs": [{"name": "output0", "shape": [1, 84, 3150], "dtype": "float32"}],
    }  # fmt: skip
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    info = artifact_info(engine)
    assert (info.head.layout, info.head.outputs, info.imgsz, info.num_classes) == ("anchor_free", ("output0",), (320, 480), 80)
    # without a GPU (or with this fake engine on one) running it is a clean one-line error
    assert_clean_error(run_cli("eval", engine, "--data", own_gt_set / "set"))
