"""FP32 agreement (quantized detections scored against FP32 detections as ground truth) and head SQNR."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from ..model import copy_model
from .cocoeval import CocoScore, detections_to_coco, evaluate_coco
from .decode import Detections
from .groundtruth import coco_dataset

AGREEMENT_CONF = 0.25


class SqnrMeter:
    """Streams signal and error energy per tensor: SQNR = 10 log10(sum ref^2 / sum (ref - test)^2).

    ``pooled``: the tensors ``db()`` pools by default (the head convs); any other tensor is ``others()``."""

    def __init__(self, pooled: Sequence[str] | None = None) -> None:
        self.signal: dict[str, float] = {}
        self.noise: dict[str, float] = {}
        self.pooled = list(pooled) if pooled else None

    def update(self, ref: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray], names: Sequence[str]) -> None:
        for n in names:
            r = np.asarray(ref[n], dtype=np.float64)
            self.signal[n] = self.signal.get(n, 0.0) + float(np.square(r).sum())
            self.noise[n] = self.noise.get(n, 0.0) + float(np.square(r - np.asarray(test[n], dtype=np.float64)).sum())

    def db(self, names: Sequence[str] | None = None) -> float:
        """Pooled over ``names`` (default: ``pooled``, else every tensor; NaN when none was updated, inf when identical)."""
        names = [n for n in (names if names is not None else self.pooled or self.signal) if n in self.signal]
        return sqnr_db(sum(self.signal[n] for n in names), sum(self.noise[n] for n in names)) if names else math.nan

    def others(self) -> list[str]:
        """The updated tensors outside ``pooled`` (none without ``pooled``)."""
        return [n for n in self.signal if self.pooled and n not in self.pooled]

    def per_tensor(self) -> dict[str, float]:
        return {n: sqnr_db(self.signal[n], self.noise[n]) for n in self.signal}


def sqnr_db(signal: float, noise: float) -> float:
    """10 log10(signal / noise); inf when the noise is exactly 0."""
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def detections_as_groundtruth(
    dets: Sequence[Detections], image_ids: Sequence[int], sizes: Sequence[tuple[int, int]], cats: np.ndarray,
    conf: float = AGREEMENT_CONF,
) -> dict:
    """A COCO gt dict made of the (FP32) detections with score >= ``conf``."""
    images = [{"id": int(i), "height": int(h), "width": int(w)} for i, (h, w) in zip(image_ids, sizes)]
    anns = [
        {k: r[k] for k in ("image_id", "category_id", "bbox")}
        for r in detections_to_coco([d.take(d.scores >= conf) for d in dets], image_ids, cats)
    ]
    return coco_dataset(images, anns, cats)


def fp32_agreement(reference_gt: dict, dets: Sequence[Detections], image_ids: Sequence[int], cats: np.ndarray) -> CocoScore:
    """COCO mAP of ``dets`` against the reference's confident detections (``detections_as_groundtruth``)."""
    return evaluate_coco(reference_gt, detections_to_coco(dets, image_ids, cats), image_ids)


def expose_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` with the intermediate tensors ``names`` added as graph outputs (if not already)."""
    out = copy_model(model)
    have = {o.name for o in out.graph.output}
    out.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in have)
    return out
