"""Evaluation: decode the three head layouts, NMS, COCO mAP, FP32 agreement + SQNR, compare tables."""

from .decode import Detections, Head, PostProcess, decode
from .evaluate import evaluate
from .nms import batched_nms, nms

__all__ = ["Detections", "Head", "PostProcess", "batched_nms", "decode", "evaluate", "nms"]
