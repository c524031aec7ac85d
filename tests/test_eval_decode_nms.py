"""NMS and box decoding against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from qyolo_trt.eval.decode import Head, PostProcess, decode, xywh2xyxy
from qyolo_trt.eval.nms import batched_nms, nms

BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
SCORES = np.array([0.8, 0.9, 0.7], np.float32)


def test_nms_hand_case():
    # IoU(box0, box1) = 81 / (100 + 100 - 81) = 0.681
    assert nms(BOXES, SCORES, 0.5).tolist() == [1, 2]
    assert nms(BOXES, SCORES, 0.69).tolist() == [1, 0, 2]
    assert nms(BOXES, SCORES, 0.5, max_keep=1).tolist() == [1]


def test_batched_nms_keeps_overlapping_boxes_of_other_classes():
    assert sorted(batched_nms(BOXES, SCORES, np.array([0, 1, 0]), 0.5).tolist()) == [0, 1, 2]
    assert batched_nms(BOXES, SCORES, np.array([0, 1, 0]), 0.5, agnostic=True).tolist() == [1, 2]


def _greedy_reference(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Plain O(n^2) greedy NMS, written independently as an oracle."""

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    keep: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: -scores[k]):
        if all(iou(boxes[i], boxes[j]) <= thr for j in keep):
            keep.append(i)
    return keep


def test_nms_matches_greedy_reference_on_random_boxes():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (300, 2))], 1)
    scores = rng.permutation(300) / 300 + 0.001
    for thr in (0.3, 0.6):
        assert nms(boxes, scores, thr).tolist() == _greedy_reference(boxes, scores, thr)


def test_xywh2xyxy():
    assert xywh2xyxy(np.array([[50, 40, 20, 10]], np.float32)).tolist() == [[40, 35, 60, 45]]


def test_decode_anchor_based_multi_label_scores_obj_times_cls():
    out = np.zeros((1, 4, 5 + 2), np.float32)
    out[0, 0] = [50, 50, 20, 10, 0.8, 0.5, 0.9]  # scores 0.4 and 0.72
    out[0, 1] = [10, 10, 4, 4, 0.2, 0.9, 0.9]  # scores 0.18: below conf
    dets = decode({"out": out}, Head("anchor_based", ("out",)), PostProcess(conf=0.3))
    assert len(dets) == 1
    d = dets[0]
    assert d.classes.tolist() == [1, 0]
    np.testing.assert_allclose(d.scores, [0.72, 0.4], rtol=1e-6)
    assert d.boxes.tolist() == [[40, 45, 60, 55]] * 2
    single = decode({"out": out}, Head("anchor_based", ("out",)), PostProcess(conf=0.3, multi_label=False))[0]
    assert single.classes.tolist() == [1]


def test_decode_anchor_free_is_channel_first():
    out = np.zeros((2, 4 + 3, 5), np.float32)
    out[1, :, 3] = [100, 60, 40, 20, 0.1, 0.05, 0.6]
    dets = decode({"output0": out}, Head("anchor_free", ("output0",)), PostProcess(conf=0.25))
    assert [len(d) for d in dets] == [0, 1]
    assert dets[1].boxes.tolist() == [[80, 50, 120, 70]] and dets[1].classes.tolist() == [2]


def test_decode_efficient_nms_layout_takes_num_dets():
    outputs = {
        "num_dets": np.array([[2]], np.int32),
        "det_boxes": np.array([[[1, 2, 3, 4], [5, 6, 7, 8], [9, 9, 9, 9]]], np.float32),
        "det_scores": np.array([[0.9, 0.5, 0.4]], np.float32),
        "det_classes": np.array([[3, 7, 1]], np.int32),
    }
    (d,) = decode(outputs, Head.from_names("nms", []), PostProcess(conf=0.6))
    assert d.boxes.tolist() == [[1, 2, 3, 4]] and d.classes.tolist() == [3]
    (d,) = decode(outputs, Head.from_names("nms", []), PostProcess(conf=0.001))
    assert d.classes.tolist() == [3, 7]


def test_decode_reports_missing_output():
    from qyolo_trt.errors import QyoloError

    with pytest.raises(QyoloError, match="lack"):
        decode({"x": np.zeros((1, 5, 6))}, Head("anchor_based", ("output0",)), PostProcess())
