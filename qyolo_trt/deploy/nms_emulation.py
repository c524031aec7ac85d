"""Run an end-to-end ``--nms`` graph on CPU: replace ``EfficientNMS_TRT`` by standard ONNX ops with the same outputs.

ONNX Runtime and OpenVINO have no EfficientNMS_TRT kernel. This rewrite lets ``eval`` score the exact
graph that TensorRT will build (in-graph decode, box coding, output layout) before any GPU is involved.
It follows the plugin's documented semantics for batch 1 and per-class NMS; it does not reproduce the
plugin's cap of 4096 candidates before NMS, nor its order among equal scores.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..errors import QyoloError
from .nms import BOX_CODING_CENTER_SIZE, PLUGIN_OP

# x1, y1, x2, y2 = [cx, cy, w, h] @ CENTER_TO_CORNERS
CENTER_TO_CORNERS = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], dtype=np.float32)


def emulate_efficient_nms(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with its EfficientNMS_TRT node replaced by NonMaxSuppression + TopK + gathers (batch 1)."""
    graph = gs.import_onnx(model)
    plugins = [n for n in graph.nodes if n.op == PLUGIN_OP]
    if len(plugins) != 1:
        raise QyoloError(f"expected one {PLUGIN_OP} node, found {len(plugins)}")
    node = plugins[0]
    boxes, scores = node.inputs[:2]
    if len(node.inputs) != 2 or node.attrs.get("class_agnostic", 0) or node.attrs.get("score_activation", 0):
        raise QyoloError(f"{PLUGIN_OP} emulation covers 2 inputs, per-class NMS and no score activation only")
    if boxes.shape is None or boxes.shape[0] != 1:
        raise QyoloError(f"{PLUGIN_OP} emulation needs a static batch of 1, got boxes {boxes.shape}")
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
        center = int(self.attrs.get("box_coding", 0)) == BOX_CODING_CENTER_SIZE
        by_class = self.op("Transpose", [scores], perm=[0, 2, 1])  # [1, C, A]
        limits = [self.const([self.max_det]), self.const([self.attrs["iou_threshold"]], np.float32),
                  self.const([self.attrs["score_threshold"]], np.float32)]
        selected = self.op("NonMaxSuppression", [boxes, by_class, *limits], np.int64, center_point_box=int(center))  # [K, 3]
        sel_scores = self.op("GatherND", [by_class, selected])  # [K]
        k = self.op("Min", [self.op("Shape", [sel_scores], np.int64), self.const([self.max_det])], np.int64)
        top_scores, top_idx = self.graph.layer(
            op="TopK", name="nms_emulation/topk", inputs=[sel_scores, k],
            outputs=[gs.Variable("nms_emulation/top_scores", dtype=np.float32), gs.Variable("nms_emulation/top_idx", dtype=np.int64)],
            attrs={"largest": 1, "sorted": 1, "axis": 0},
        )
        top = self.op("Gather", [selected, top_idx], np.int64, axis=0)  # [k, 3]: batch, class, anchor
        corners = self.op("MatMul", [boxes, self.const(CENTER_TO_CORNERS, np.float32)]) if center else boxes
        flat = self.op("Squeeze", [corners, self.const([0])])  # [A, 4]
        picked = self.op("Gather", [flat, self.op("Gather", [top, self.const(2)], np.int64, axis=1)], axis=0)
        classes = self.op("Cast", [self.op("Gather", [top, self.const(1)], np.int64, axis=1)], np.int32, to=onnx.TensorProto.INT32)
        room = self.op("Sub", [self.const([self.max_det]), k], np.int64)
        zero = self.const([0])
        self._pad_batch(picked, self.op("Concat", [zero, zero, room, zero], np.int64, axis=0), det_boxes)
        self._pad_batch(top_scores, self.op("Concat", [zero, room], np.int64, axis=0), det_scores)
        self._pad_batch(classes, self.op("Concat", [zero, room], np.int64, axis=0), det_classes)
        count = self.op("Cast", [k], np.int32, to=onnx.TensorProto.INT32)
        self.op("Reshape", [count, self.const([1, 1])], outputs=[num_dets])

    def _pad_batch(self, x: gs.Variable, pads: gs.Variable, out: gs.Variable) -> None:
        """Zero-pad the detections axis to ``max_det`` and add the batch axis."""
        self.op("Unsqueeze", [self.op("Pad", [x, pads], out.dtype), self.const([0])], outputs=[out])
