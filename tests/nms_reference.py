"""Test helpers for the EfficientNMS graph: expose the plugin's inputs to ORT, and the plugin's semantics in numpy."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from qyolo_trt.deploy.nms import PLUGIN_OP


def expose_plugin_inputs(model: onnx.ModelProto, raw: str) -> onnx.ModelProto:
    """The NMS model minus its plugin node, outputting the raw head and the plugin's two inputs."""
    graph = gs.import_onnx(model)
    node = next(n for n in graph.nodes if n.op == PLUGIN_OP)
    tensors = graph.tensors()
    graph.outputs = [tensors[raw].to_variable(dtype=np.float32), *(t.to_variable(dtype=np.float32) for t in node.inputs)]
    node.outputs.clear()
    graph.cleanup().toposort()
    return gs.export_onnx(graph)


def efficient_nms_reference(boxes: np.ndarray, scores: np.ndarray, score_thr: float, iou_thr: float, max_det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What EfficientNMS_TRT computes for one image (box_coding=1, per-class, no activation): corner boxes, scores, classes."""
    xy, wh = boxes[:, :2], boxes[:, 2:]
    corners = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    anchor, cls = np.nonzero(scores >= score_thr)
    order = np.argsort(-scores[anchor, cls], kind="stable")
    anchor, cls = anchor[order], cls[order]
    b, conf = corners[anchor], scores[anchor, cls]
    area = np.prod(b[:, 2:] - b[:, :2], axis=1)
    inter = np.prod(np.clip(np.minimum(b[:, None, 2:], b[None, :, 2:]) - np.maximum(b[:, None, :2], b[None, :, :2]), 0, None), axis=2)
    iou = inter / (area[:, None] + area[None, :] - inter)
    keep = np.ones(len(b), bool)
    for i in range(len(b)):
        if keep[i]:
            keep[i + 1:] &= ~((iou[i, i + 1:] >= iou_thr) & (cls[i + 1:] == cls[i]))
    return b[keep][:max_det], conf[keep][:max_det], cls[keep][:max_det]
