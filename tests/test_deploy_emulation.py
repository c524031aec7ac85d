"""`emulate_efficient_nms`: the --nms graph on ONNX Runtime, against the plugin's semantics and through `qyolo-trt eval`."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import run_cli
from deploy_helpers import dynamic_detector, efficient_nms_reference, expose_plugin_inputs

from qyolo_trt.backends.ort.session import make_session
from qyolo_trt.data import ImageLoader
from qyolo_trt.deploy.nms import add_efficient_nms
from qyolo_trt.deploy.nms_emulation import emulate_efficient_nms
from qyolo_trt.errors import QyoloError
from qyolo_trt.model import inspect_detector, load_detector


@pytest.fixture(scope="module")
def yolov5n(yolov5n_onnx):
    return load_detector(yolov5n_onnx)


@pytest.mark.parametrize("agnostic", [False, True])
def test_emulation_matches_the_plugin_semantics(yolov5n, bus_jpg, agnostic: bool) -> None:
    model, info = yolov5n
    nms = add_efficient_nms(model, info, score_threshold=0.02, iou_threshold=0.5, max_det=30, class_agnostic=agnostic)
    image = next(iter(ImageLoader([bus_jpg], imgsz=info.imgsz))).images
    _, boxes, scores = make_session(expose_plugin_inputs(nms, info.output_names[0]).SerializeToString()).run(None, {info.input_name: image})
    want_boxes, want_scores, want_classes = efficient_nms_reference(boxes[0], scores[0], 0.02, 0.5, 30, agnostic=agnostic)
    emulated = emulate_efficient_nms(nms)
    assert inspect_detector(emulated).layout == "nms"
    num, det_boxes, det_scores, det_classes = make_session(emulated.SerializeToString()).run(None, {info.input_name: image})
    assert num.dtype == np.int32 and det_classes.dtype == np.int32 and det_boxes.shape == (1, 30, 4) and det_scores.shape == (1, 30)
    k = int(num[0, 0])
    assert k == len(want_classes) >= 10
    np.testing.assert_allclose(det_boxes[0, :k], want_boxes, atol=1e-3)
    np.testing.assert_allclose(det_scores[0, :k], want_scores, rtol=1e-6)
    np.testing.assert_array_equal(det_classes[0, :k], want_classes)


def test_candidate_cap_of_the_plugin(yolov5n, bus_jpg) -> None:
    """Only the best 4096 (anchor, class) scores enter NMS: with strong suppression, fewer than max_det survive them."""
    model, info = yolov5n
    nms = add_efficient_nms(model, info, score_threshold=0.0, iou_threshold=0.2, max_det=1000)
    image = next(iter(ImageLoader([bus_jpg], imgsz=info.imgsz))).images
    _, boxes, scores = make_session(expose_plugin_inputs(nms, info.output_names[0]).SerializeToString()).run(None, {info.input_name: image})
    capped = efficient_nms_reference(boxes[0], scores[0], 0.0, 0.2, 1000)
    wider = efficient_nms_reference(boxes[0], scores[0], 0.0, 0.2, 1000, candidates=2 * 4096)
    assert len(capped[2]) < len(wider[2])  # the cap binds on this image
    num, det_boxes, det_scores, det_classes = make_session(emulate_efficient_nms(nms).SerializeToString()).run(None, {info.input_name: image})
    k = int(num[0, 0])
    assert k == len(capped[2])
    np.testing.assert_allclose(det_scores[0, :k], capped[1], rtol=1e-6)
    np.testing.assert_array_equal(det_classes[0, :k], capped[2])


@pytest.mark.parametrize("threshold", [0.25, 1.0])
def test_padding_after_the_last_detection(yolov5n, bus_jpg, threshold: float) -> None:
    model, info = yolov5n
    emulated = emulate_efficient_nms(add_efficient_nms(model, info, score_threshold=threshold, max_det=50))
    image = next(iter(ImageLoader([bus_jpg], imgsz=info.imgsz))).images
    num, det_boxes, det_scores, det_classes = make_session(emulated.SerializeToString()).run(None, {info.input_name: image})
    k = int(num[0, 0])
    assert (0 < k < 50) if threshold < 1 else k == 0  # no score reaches 1.0: an empty, all-zero result
    assert (det_scores[0, :k] >= threshold).all()
    assert not det_boxes[0, k:].any() and not det_scores[0, k:].any() and not det_classes[0, k:].any()


def test_eval_scores_the_nms_graph_like_the_raw_head(yolov5n, coco_dir, tmp_path) -> None:
    """`qyolo-trt eval` on the end-to-end plugin graph (ORT runs its emulation; yolov5 val settings) gives the raw
    head's mAP on the same images."""
    model, info = yolov5n
    onnx.save(add_efficient_nms(model, info, score_threshold=0.001, iou_threshold=0.6, max_det=300), tmp_path / "nms.onnx")
    onnx.save(model, tmp_path / "raw.onnx")
    common = ["--data", coco_dir / "instances.json", "--iou", "0.6", "--max-det", "300", "--num-images", "16", "--json"]
    results = []
    for artifact in (tmp_path / "nms.onnx", tmp_path / "raw.onnx"):
        proc = run_cli("eval", artifact, *common)
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads(proc.stdout))
    nms, raw = results
    assert nms["images"] == raw["images"] == 16
    assert raw["map50_95"] > 0.3  # the real model on real images
    assert nms["map50_95"] == pytest.approx(raw["map50_95"], abs=0.005) and nms["map50"] == pytest.approx(raw["map50"], abs=0.005)


def test_emulation_refusals(yolov5n) -> None:
    model, info = yolov5n
    with pytest.raises(QyoloError, match="expected one EfficientNMS_TRT node, found 0"):
        emulate_efficient_nms(model)
    dynamic = dynamic_detector()
    with pytest.raises(QyoloError, match="static batch of 1"):
        emulate_efficient_nms(add_efficient_nms(dynamic, inspect_detector(dynamic)))
