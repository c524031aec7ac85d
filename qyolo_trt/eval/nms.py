"""Vectorised greedy NMS in numpy (torchvision semantics) and its class-aware form."""

from __future__ import annotations

import numpy as np

MAX_WH = 7680.0  # class offset (yolov5 / Ultralytics): boxes of different classes never overlap


def box_iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy ``box`` against ``boxes`` [K,4]."""
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_keep: int | None = None) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first; a box is dropped when its IoU with a kept
    box is > ``iou``. Stops after ``max_keep`` boxes (the result is the same prefix)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    limit = len(order) if max_keep is None else max_keep
    while order.size and len(keep) < limit:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        order = rest[box_iou_one(boxes[i], boxes[rest]) <= iou]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_keep: int | None = None, agnostic: bool = False
) -> np.ndarray:
    """Class-aware NMS by the offset trick: shift each class's boxes by ``class * MAX_WH``."""
    if agnostic or boxes.size == 0:
        return nms(boxes, scores, iou, max_keep)
    shifted = boxes.astype(np.float64) + (classes.astype(np.float64) * MAX_WH)[:, None]
    return nms(shifted, scores, iou, max_keep)
