"""Ground truth conversion, COCO mAP on known answers, the bootstrap's weighted mAP, agreement and SQNR."""

from __future__ import annotations

import copy
import math

import cv2
import numpy as np
import pytest

from qyolo_trt.data import list_images
from qyolo_trt.eval.agreement import SqnrMeter, detections_as_groundtruth, fp32_agreement, sqnr_db
from qyolo_trt.eval.bootstrap import paired_drop, resample_weights
from qyolo_trt.eval.cocoeval import detections_to_coco, evaluate_coco, weighted_map
from qyolo_trt.eval.decode import Detections
from qyolo_trt.eval.groundtruth import COCO80_TO_91, category_ids, coco_groundtruth, yolo_groundtruth


def _yolo_set(tmp_path, labels: dict[str, str], size=(48, 64)):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for stem, text in labels.items():
        cv2.imwrite(str(tmp_path / "images" / f"{stem}.png"), np.zeros((*size, 3), np.uint8))
        (tmp_path / "labels" / f"{stem}.txt").write_text(text)
    return sorted((tmp_path / "images").iterdir())


def test_yolo_labels_to_coco_gt(tmp_path):
    paths = _yolo_set(tmp_path, {"a": "11 0.5 0.5 0.25 0.5\n", "b": "79 0 0 0.5 0.5 0 0.5\n", "c": ""})
    gt, ids = yolo_groundtruth(paths, {p: (48, 64) for p in paths}, num_classes=80)
    assert ids == [1, 2, 3] and [im["width"] for im in gt["images"]] == [64] * 3
    a, b = gt["annotations"]
    # class 11 -> COCO id 13; box centre (32, 24), size (16, 24) -> xywh (24, 12, 16, 24)
    assert a["category_id"] == 13 and a["image_id"] == 1 and a["bbox"] == [24, 12, 16, 24] and a["area"] == 384
    # polygon (0,0) (0.5,0) (0.5,0.5) -> its bounding box; class 79 -> id 90
    assert b["category_id"] == 90 and b["bbox"] == [0, 0, 32, 24]
    assert len(gt["categories"]) == 80


def test_category_ids():
    assert category_ids(80)[[0, 11, 79]].tolist() == [1, 13, 90] and len(set(COCO80_TO_91)) == 80
    assert category_ids(3).tolist() == [1, 2, 3]


def _gt_as_detections(gt: dict, ids: list[int]) -> list[Detections]:
    """Detections written from ground truth (COCO-91 ids back to model classes)."""
    to80 = {int(c): i for i, c in enumerate(COCO80_TO_91)}
    dets = []
    for img_id in ids:
        anns = [a for a in gt["annotations"] if a["image_id"] == img_id]
        xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        cls = np.array([to80[a["category_id"]] for a in anns], np.int64)
        dets.append(Detections(xyxy, np.linspace(0.9, 0.5, len(anns)).astype(np.float32), cls))
    return dets


@pytest.fixture(scope="module")
def coco_gt(coco_dir):
    paths = list_images(coco_dir / "instances.json")
    return coco_groundtruth(coco_dir / "instances.json", paths)


def _perturbed(dets: list[Detections], seed: int) -> list[Detections]:
    """Jittered boxes, shuffled scores, some dropped and some false positives (a deterministic "bad model")."""
    rng = np.random.default_rng(seed)
    out = []
    for d in dets:
        keep = rng.random(len(d)) > 0.2
        boxes = d.boxes[keep] + rng.normal(0, 4, (keep.sum(), 4)).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        fp = rng.uniform(0, 300, (3, 2)).astype(np.float32)
        boxes = np.concatenate([boxes, np.concatenate([fp, fp + 50], 1)])
        cls = np.concatenate([d.classes[keep], rng.integers(0, 80, 3)])
        out.append(Detections(boxes, rng.uniform(0.01, 1, len(cls)).astype(np.float32), cls))
    return out


def test_detections_from_labels_score_map_one(coco_gt):
    gt, ids = coco_gt
    score = evaluate_coco(gt, detections_to_coco(_gt_as_detections(gt, ids), ids, COCO80_TO_91), ids)
    assert score.map50_95 == pytest.approx(1.0) and score.map50 == pytest.approx(1.0)


def test_weighted_map_reproduces_pycocotools_with_duplicated_images(coco_gt):
    gt, ids = coco_gt
    dets = _perturbed(_gt_as_detections(gt, ids), seed=0)
    score = evaluate_coco(gt, detections_to_coco(dets, ids, COCO80_TO_91), ids)
    assert 0.2 < score.map50_95 < 0.9
    assert weighted_map(score.table, np.ones(len(ids), np.int64)) == pytest.approx((score.map50_95, score.map50), abs=1e-12)
    # a resampling with repeats == pycocotools on a dataset where those images really are repeated
    w = resample_weights(len(ids), samples=1, seed=3)[0]
    dup_gt = copy.deepcopy(gt)
    dup_gt["images"], dup_gt["annotations"], dup_ids, dup_dets = [], [], [], []
    for i, (img_id, n) in enumerate(zip(ids, w)):
        for r in range(n):
            new_id = img_id * 1000 + r
            dup_ids.append(new_id)
            dup_dets.append(dets[i])
            dup_gt["images"].append({"id": new_id})
            dup_gt["annotations"] += [{**a, "image_id": new_id} for a in gt["annotations"] if a["image_id"] == img_id]
    dup_gt = {**dup_gt, "annotations": [{k: v for k, v in a.items() if k != "id"} for a in dup_gt["annotations"]]}
    from qyolo_trt.eval.groundtruth import coco_dataset

    dup_gt = coco_dataset(dup_gt["images"], dup_gt["annotations"], [c["id"] for c in gt["categories"]])
    direct = evaluate_coco(dup_gt, detections_to_coco(dup_dets, dup_ids, COCO80_TO_91), dup_ids)
    assert weighted_map(score.table, w) == pytest.approx((direct.map50_95, direct.map50), abs=1e-9)


def test_paired_bootstrap(coco_gt):
    gt, ids = coco_gt
    perfect = _gt_as_detections(gt, ids)
    ref = evaluate_coco(gt, detections_to_coco(perfect, ids, COCO80_TO_91), ids)
    bad = evaluate_coco(gt, detections_to_coco(_perturbed(perfect, seed=1), ids, COCO80_TO_91), ids)
    weights = resample_weights(len(ids), samples=100, seed=0)
    same = paired_drop(ref, ref, weights)
    assert (same.drop, same.low, same.high) == (0.0, 0.0, 0.0)
    drop = paired_drop(ref, bad, weights)
    assert drop.drop == pytest.approx(ref.map50_95 - bad.map50_95)
    assert 0 < drop.low < drop.drop < drop.high < 1 and drop.samples == 100
    assert np.array_equal(weights, resample_weights(len(ids), samples=100, seed=0))  # fixed seed


def test_agreement_with_itself_is_one_and_lower_when_perturbed(coco_gt):
    gt, ids = coco_gt
    dets = _perturbed(_gt_as_detections(gt, ids), seed=2)
    sizes = [(im["height"], im["width"]) for im in gt["images"]]
    ref_gt = detections_as_groundtruth(dets, ids, sizes, COCO80_TO_91)
    assert all(a["image_id"] in ids for a in ref_gt["annotations"])
    assert len(ref_gt["annotations"]) == sum(int((d.scores >= 0.25).sum()) for d in dets)
    assert fp32_agreement(ref_gt, dets, ids, COCO80_TO_91).map50_95 == pytest.approx(1.0)
    other = _perturbed(_gt_as_detections(gt, ids), seed=5)
    assert fp32_agreement(ref_gt, other, ids, COCO80_TO_91).map50_95 < 0.5


def test_sqnr():
    assert sqnr_db(1.0, 0.01) == pytest.approx(20.0) and sqnr_db(1.0, 0.0) == math.inf
    meter = SqnrMeter()
    ref = {"a": np.ones((2, 50)), "b": np.full(100, 3.0)}
    meter.update(ref, {"a": np.ones((2, 50)) + 0.1, "b": ref["b"]}, ["a", "b"])
    # a: signal 100, noise 1 -> 20 dB; b exact; pooled signal 1000, noise 1 -> 30 dB
    assert meter.per_tensor() == pytest.approx({"a": 20.0, "b": math.inf})
    assert meter.db() == pytest.approx(30.0)
    pooled = SqnrMeter(pooled=["a"])  # the head convs pooled; "b" (a graph output) reported beside them
    pooled.update(ref, {"a": np.ones((2, 50)) + 0.1, "b": ref["b"] + 0.3}, ["a", "b"])
    # b: signal 900, noise 9 -> 20 dB
    assert pooled.db() == pytest.approx(20.0) and pooled.others() == ["b"] and pooled.db(["b"]) == pytest.approx(20.0)
    assert pooled.db(["a", "b"]) == pytest.approx(10 * math.log10(1000 / 10)) and SqnrMeter().others() == []
