"""Run an end-to-end ``--nms`` graph on CPU: replace ``EfficientNMS_TRT`` by standard ONNX ops with the same outputs.

ONNX Runtime and OpenVINO have no EfficientNMS_TRT kernel. This rewrite lets ``eval`` score the exact
graph that TensorRT will build (in-graph decode, box coding, output layout) before any GPU is involved.
It follows the plugin's algorithm (``efficientNMSInference.cu``) for batch 1: every (anchor, class) score
is a candidate, only the best 4096 candidates enter NMS, per-class suppression at IoU >= threshold unless
``class_agnostic``, best-first output padded with zeros. It does not reproduce the order among equal scores.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..errors import QyoloError
from .nms import BOX_CODING_CENTER_SIZE, PLUGIN_OP

NUM_SELECTED_BOXES = 4096  # EfficientNMSParameters::numSelectedBoxes: candidates kept (by score) before NMS
# x1, y1, x2, y2 = [cx, cy, w, h] @ CENTER_TO_CORNERS
CENTER_TO_CORNERS = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], dtype=np.float32)


def emulate_efficient_nms(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its EfficientNMS_TRT node replaced by TopK + NonMaxSuppression + gathers (batch 1)."""
    graph = gs.import_onnx(model)
    plugins = [n for n in graph.nodes if n.op == PLUGIN_OP]
    if len(plugins) != 1:
        raise QyoloError(f"expected one {PLUGIN_OP} node, found {len(plugins)}")
    node = plugins[0]
    boxes, scores = node.inputs[:2]
    if len(node.inputs) != 2 or node.attrs.get("score_activation", 0):
        raise QyoloError(f"{PLUGIN_OP} emulation covers the 2-input form without score activation only")
    if graph.opset < 13:
        raise QyoloError(f"{PLUGIN_OP} emulation needs opset >= 13, the model has {graph.opset}")
    if boxes.shape is None or boxes.shape[0] != 1 or not isinstance(scores.shape[-1], int):
        raise QyoloError(f"{PLUGIN_OP} emulation needs a static batch of 1 and a fixed class count, got scores {scores.shape}")
    outputs = list(node.outputs)
    node.outputs.clear()
    graph.nodes.remove(node)
    _NmsBuilder(graph, node.attrs).build(boxes, scores, outputs)
    graph.cleanup().toposort()
    out = gs.export_onnx(graph)
    out.ir_version = model.ir_version
    out.metadata_props.extend(model.metadata_props)
    return out


class _NmsBuilder:
    """Adds the emulation's nodes to ``graph``; every new tensor is named ``nms_emulation/...``."""

    def __init__(self, graph: gs.Graph, attrs: dict) -> None:
        self.graph, self.attrs = graph, attrs
        self.max_det = int(attrs["max_output_boxes"])
        self.count = 0

    def name(self, what: str) -> str:
        self.count += 1
        return f"nms_emulation/{what}_{self.count}"

    def op(self, op: str, inputs: list, dtype=np.float32, outputs: list | None = None, **attrs) -> gs.Variable:
        name = self.name(op.lower())
        outs = outputs or [gs.Variable(name, dtype=dtype)]
        return self.graph.layer(op=op, name=name, inputs=inputs, outputs=outs, attrs=attrs)[0]

    def const(self, value, dtype=np.int64) -> gs.Constant:
        return gs.Constant(self.name("const"), np.asarray(value, dtype=dtype))

    def build(self, boxes: gs.Variable, scores: gs.Variable, outputs: list[gs.Variable]) -> None:
        num_dets, det_boxes, det_scores, det_classes = outputs
        classes = int(scores.shape[-1])
        # candidates: the best 4096 (anchor, class) scores of the image
        flat = self.op("Reshape", [scores, self.const([-1])])  # [A*C], anchor-major
        k = self.op("Min", [self.op("Shape", [flat], np.int64), self.const([NUM_SELECTED_BOXES])], np.int64)
        cand_scores, cand_idx = self.graph.layer(
            op="TopK", name=self.name("topk"), inputs=[flat, k], attrs={"largest": 1, "sorted": 1, "axis": 0},
            outputs=[gs.Variable(self.name("cand_scores"), dtype=np.float32), gs.Variable(self.name("cand_idx"), dtype=np.int64)],
        )
        anchor = self.op("Div", [cand_idx, self.const(classes)], np.int64)
        cand_cls = self.op("Mod", [cand_idx, self.const(classes)], np.int64)
        flat_boxes = self.op("Squeeze", [boxes, self.const([0])])  # [A, 4]
        if int(self.attrs.get("box_coding", 0)) == BOX_CODING_CENTER_SIZE:
            flat_boxes = self.op("MatMul", [flat_boxes, self.const(CENTER_TO_CORNERS, np.float32)])
        corners = self.op("Gather", [flat_boxes, anchor], axis=0)  # [k, 4]
        # per-class NMS as one NMS: boxes of different classes are moved apart so that they never overlap
        separated = corners if int(self.attrs.get("class_agnostic", 0)) else self._separate(corners, cand_cls)
        limits = [self.const([self.max_det]), self.const([self.attrs["iou_threshold"]], np.float32),
                  self.const([self.attrs["score_threshold"]], np.float32)]
        nms_boxes = self.op("Unsqueeze", [separated, self.const([0])])  # [1, k, 4]
        nms_scores = self.op("Unsqueeze", [cand_scores, self.const([0, 1])])  # [1, 1, k]
        selected = self.op("NonMaxSuppression", [nms_boxes, nms_scores, *limits], np.int64)  # [n, 3], best first
        keep = self.op("Gather", [selected, self.const(2)], np.int64, axis=1)  # [n] candidate indices
        n = self.op("Shape", [keep], np.int64)
        room = self.op("Sub", [self.const([self.max_det]), n], np.int64)
        zero = self.const([0])
        picked_cls = self.op("Cast", [self.op("Gather", [cand_cls, keep], np.int64, axis=0)], np.int32, to=onnx.TensorProto.INT32)
        self._pad_batch(self.op("Gather", [corners, keep], axis=0), self.op("Concat", [zero, zero, room, zero], np.int64, axis=0), det_boxes)
        self._pad_batch(self.op("Gather", [cand_scores, keep], axis=0), self.op("Concat", [zero, room], np.int64, axis=0), det_scores)
        self._pad_batch(picked_cls, self.op("Concat", [zero, room], np.int64, axis=0), det_classes)
        self.op("Reshape", [self.op("Cast", [n], np.int32, to=onnx.TensorProto.INT32), self.const([1, 1])], outputs=[num_dets])

    def _separate(self, corners: gs.Variable, cls: gs.Variable) -> gs.Variable:
        """corners + class * (2 * max|coordinate| + 1): disjoint per class, same IoU within a class."""
        span = self.op("Add", [self.op("Mul", [self.op("ReduceMax", [self.op("Abs", [corners])], keepdims=0),
                                               self.const(2.0, np.float32)]), self.const(1.0, np.float32)])
        shift = self.op("Mul", [self.op("Cast", [cls], to=onnx.TensorProto.FLOAT), span])  # [k]
        return self.op("Add", [corners, self.op("Unsqueeze", [shift, self.const([1])])])

    def _pad_batch(self, x: gs.Variable, pads: gs.Variable, out: gs.Variable) -> None:
        """Zero-pad the detections axis to ``max_det`` and add the batch axis."""
        self.op("Unsqueeze", [self.op("Pad", [x, pads], out.dtype), self.const([0])], outputs=[out])
