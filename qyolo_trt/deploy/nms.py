"""Append TensorRT's ``EfficientNMS_TRT`` plugin to a YOLO ONNX: an end-to-end detector engine.

The raw head output is split in-graph into the plugin's two inputs (Standard NMS mode):
boxes ``[N, A, 4]`` as centre-size ``cx, cy, w, h`` in input pixels (``box_coding=1``; the plugin
always emits corners) and scores ``[N, A, C]`` (anchor-based: objectness * class score;
anchor-free: the class scores). Both heads are already sigmoided, so ``score_activation=0``.
ONNX Runtime cannot run the plugin; TensorRT's ONNX parser maps the node to the plugin creator by
its op name (see TensorRT ``plugin/efficientNMSPlugin/README.md``).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..errors import QyoloError
from ..model import NMS_OUTPUTS, DetectorInfo

PLUGIN_OP = "EfficientNMS_TRT"
BOX_CODING_CENTER_SIZE = 1


def add_efficient_nms(
    model: onnx.ModelProto,
    info: DetectorInfo,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_det: int = 100,
    *,
    class_agnostic: bool = False,
) -> onnx.ModelProto:
    """Return a copy of ``model`` whose outputs are ``num_dets [N,1] int32, det_boxes [N,K,4] float32
    (x1, y1, x2, y2 in input pixels), det_scores [N,K] float32, det_classes [N,K] int32`` with K = ``max_det``."""
    _check_args(info, score_threshold, iou_threshold, max_det)
    graph = gs.import_onnx(model)
    raw = graph.tensors()[info.output_names[0]]
    boxes, scores = _split_head(graph, raw, info)
    batch = info.input_shape[0]
    outputs = [
        gs.Variable(NMS_OUTPUTS[0], dtype=np.int32, shape=[batch, 1]),
        gs.Variable(NMS_OUTPUTS[1], dtype=np.float32, shape=[batch, max_det, 4]),
        gs.Variable(NMS_OUTPUTS[2], dtype=np.float32, shape=[batch, max_det]),
        gs.Variable(NMS_OUTPUTS[3], dtype=np.int32, shape=[batch, max_det]),
    ]
    graph.layer(
        op=PLUGIN_OP,
        name=f"nms/{PLUGIN_OP}",
        inputs=[boxes, scores],
        outputs=outputs,
        attrs={
            "plugin_version": "1",
            "background_class": -1,
            "box_coding": BOX_CODING_CENTER_SIZE,
            "score_threshold": float(score_threshold),
            "iou_threshold": float(iou_threshold),
            "max_output_boxes": int(max_det),
            "score_activation": 0,
            "class_agnostic": int(class_agnostic),
        },
    )
    graph.outputs = outputs
    graph.cleanup().toposort()
    out = gs.export_onnx(graph)
    out.ir_version = model.ir_version
    out.metadata_props.extend(model.metadata_props)
    return out


def _check_args(info: DetectorInfo, score_threshold: float, iou_threshold: float, max_det: int) -> None:
    if info.layout == "nms":
        raise QyoloError("model already ends in EfficientNMS outputs (num_dets, det_boxes, ...): --nms added twice")
    if not 0.0 <= score_threshold <= 1.0:
        raise QyoloError(f"NMS score threshold must be in [0, 1], got {score_threshold}")
    if not 0.0 < iou_threshold <= 1.0:
        raise QyoloError(f"NMS IoU threshold must be in (0, 1], got {iou_threshold}")
    if max_det < 1:
        raise QyoloError(f"NMS max detections must be >= 1, got {max_det}")


def _split_head(graph: gs.Graph, raw: gs.Variable, info: DetectorInfo) -> tuple[gs.Variable, gs.Variable]:
    """Raw head output -> (centre-size boxes [N,A,4], scores [N,A,C])."""
    batch, c = info.input_shape[0], info.num_classes
    if info.layout == "anchor_free":  # [N, 4+C, A] -> [N, A, 4+C]
        anchors = info.output_shape[2]
        rows = graph.layer(
            op="Transpose", name="nms/transpose", inputs=[raw], attrs={"perm": [0, 2, 1]},
            outputs=[gs.Variable("nms/rows", dtype=np.float32, shape=[batch, anchors, 4 + c])],
        )[0]
        boxes = _slice(graph, rows, 0, 4, "boxes", [batch, anchors, 4])
        return boxes, _slice(graph, rows, 4, 4 + c, "scores", [batch, anchors, c])
    anchors = info.output_shape[1]  # anchor-based [N, A, 5+C]: cx, cy, w, h, obj, classes
    boxes = _slice(graph, raw, 0, 4, "boxes", [batch, anchors, 4])
    obj = _slice(graph, raw, 4, 5, "objectness", [batch, anchors, 1])
    cls = _slice(graph, raw, 5, 5 + c, "class_scores", [batch, anchors, c])
    scores = graph.layer(
        op="Mul", name="nms/score", inputs=[cls, obj],
        outputs=[gs.Variable("nms/scores", dtype=np.float32, shape=[batch, anchors, c])],
    )[0]
    return boxes, scores


def _slice(graph: gs.Graph, x: gs.Variable, start: int, end: int, what: str, shape: list) -> gs.Variable:
    """``x[:, :, start:end]`` as an ONNX Slice (opset >= 10)."""
    consts = [gs.Constant(f"nms/{what}_{k}", np.array([v], dtype=np.int64)) for k, v in (("start", start), ("end", end), ("axis", 2))]
    return graph.layer(
        op="Slice", name=f"nms/slice_{what}", inputs=[x, *consts],
        outputs=[gs.Variable(f"nms/{what}", dtype=np.float32, shape=shape)],
    )[0]
