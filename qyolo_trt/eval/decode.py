"""Raw detector outputs -> per-image detections (network-input pixels) for the three head layouts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..defaults import EVAL_CONF, EVAL_IOU, EVAL_MAX_DET
from ..errors import QyoloError
from ..model import NMS_OUTPUTS, Layout
from .nms import batched_nms


@dataclass
class Detections:
    """Detections of one image: xyxy boxes, scores, 0-based model class indices."""

    boxes: np.ndarray  # [K,4] float32
    scores: np.ndarray  # [K] float32
    classes: np.ndarray  # [K] int64

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def take(self, index: np.ndarray) -> "Detections":
        """The detections at ``index`` (integer indices or a boolean mask)."""
        return Detections(self.boxes[index], self.scores[index], self.classes[index])

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class PostProcess:
    """Confidence filter and NMS settings (yolov5's val: conf 0.001, IoU 0.6, 300 detections)."""

    conf: float = EVAL_CONF
    iou: float = EVAL_IOU
    max_det: int = EVAL_MAX_DET
    multi_label: bool = True  # a box may yield several classes above ``conf`` (yolov5 / Ultralytics val)
    agnostic: bool = False
    max_nms: int = 30000  # candidates kept (by score) before NMS


@dataclass(frozen=True)
class Head:
    """Which graph outputs carry detections, and how they are laid out."""

    layout: Layout
    outputs: tuple[str, ...]  # the main output, or the four EfficientNMS outputs

    @classmethod
    def from_names(cls, layout: Layout, output_names: Sequence[str]) -> "Head":
        return cls(layout, NMS_OUTPUTS if layout == "nms" else (output_names[0],))


def xywh2xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre-size boxes -> corner boxes."""
    half = xywh[..., 2:4] / 2
    return np.concatenate([xywh[..., :2] - half, xywh[..., :2] + half], axis=-1)


def split_boxes_scores(output: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """[N,4+C,A] (anchor-free) or [N,A,5+C] (anchor-based, score = obj * cls) -> cxcywh [N,A,4], scores [N,A,C]."""
    if layout == "anchor_free":
        pred = output.transpose(0, 2, 1)
        return pred[..., :4], pred[..., 4:]
    if layout == "anchor_based":
        return output[..., :4], output[..., 5:] * output[..., 4:5]
    raise QyoloError(f"layout {layout!r} has no raw box/score tensor")


def select(boxes_xywh: np.ndarray, scores: np.ndarray, post: PostProcess) -> Detections:
    """One image: confidence filter (multi- or single-label), top ``max_nms`` by score, class-aware NMS."""
    if post.multi_label:
        anchor, cls = np.nonzero(scores > post.conf)
        conf = scores[anchor, cls]
    else:
        cls = scores.argmax(1)
        conf = scores[np.arange(len(scores)), cls]
        anchor = np.nonzero(conf > post.conf)[0]
        cls, conf = cls[anchor], conf[anchor]
    if anchor.size > post.max_nms:
        top = np.argsort(-conf, kind="stable")[: post.max_nms]
        anchor, cls, conf = anchor[top], cls[top], conf[top]
    dets = Detections(xywh2xyxy(boxes_xywh[anchor]).astype(np.float32), conf.astype(np.float32), cls.astype(np.int64))
    return dets.take(batched_nms(dets.boxes, dets.scores, dets.classes, post.iou, post.max_det, post.agnostic))


def decode_nms(outputs: Mapping[str, np.ndarray], post: PostProcess) -> list[Detections]:
    """EfficientNMS outputs (num_dets, det_boxes xyxy, det_scores, det_classes) -> detections above ``conf``."""
    num, boxes, scores, classes = (np.asarray(outputs[n]) for n in NMS_OUTPUTS)
    result = []
    for i in range(len(boxes)):
        k = int(num.reshape(len(boxes), -1)[i, 0])
        dets = Detections(boxes[i, :k].astype(np.float32), scores[i, :k].astype(np.float32), classes[i, :k].astype(np.int64))
        result.append(dets.take(dets.scores > post.conf))
    return result


def decode(outputs: Mapping[str, np.ndarray], head: Head, post: PostProcess) -> list[Detections]:
    """Every image of a batch of raw outputs -> detections in network-input pixels."""
    missing = [n for n in head.outputs if n not in outputs]
    if missing:
        raise QyoloError(f"model outputs lack {', '.join(missing)} (layout {head.layout})")
    if head.layout == "nms":
        return decode_nms(outputs, post)
    boxes, scores = split_boxes_scores(np.asarray(outputs[head.outputs[0]], dtype=np.float32), head.layout)
    return [select(b, s, post) for b, s in zip(boxes, scores)]
