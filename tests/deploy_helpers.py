"""Deployment test helpers: a tiny dynamic-batch detector, the EfficientNMS plugin's inputs exposed to ORT and its
semantics in numpy, and a protobuf text-format reader for Triton configs."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from qyolo_trt.deploy.nms import PLUGIN_OP

FLOAT = onnx.TensorProto.FLOAT


def expose_plugin_inputs(model: onnx.ModelProto, raw: str) -> onnx.ModelProto:
    """The NMS model minus its plugin node, outputting the raw head and the plugin's two inputs."""
    graph = gs.import_onnx(model)
    node = next(n for n in graph.nodes if n.op == PLUGIN_OP)
    tensors = graph.tensors()
    graph.outputs = [tensors[raw].to_variable(dtype=np.float32), *(t.to_variable(dtype=np.float32) for t in node.inputs)]
    node.outputs.clear()
    graph.cleanup().toposort()
    return gs.export_onnx(graph)


def efficient_nms_reference(
    boxes: np.ndarray, scores: np.ndarray, score_thr: float, iou_thr: float, max_det: int, agnostic: bool = False, candidates: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What EfficientNMS_TRT computes for one image (box_coding=1, no activation): the best ``candidates`` (anchor, class)
    scores >= ``score_thr``, greedy NMS (per class unless ``agnostic``); corner boxes, scores, classes."""
    xy, wh = boxes[:, :2], boxes[:, 2:]
    corners = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
    anchor, cls = np.nonzero(scores >= score_thr)
    order = np.argsort(-scores[anchor, cls], kind="stable")[:candidates]
    anchor, cls = anchor[order], cls[order]
    b, conf = corners[anchor], scores[anchor, cls]
    area = np.prod(b[:, 2:] - b[:, :2], axis=1)
    alive, kept = np.ones(len(b), bool), []
    for i in range(len(b)):  # best first; stops at max_det kept, like the plugin
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) == max_det:
            break
        rest = b[i + 1:]
        inter = np.prod(np.clip(np.minimum(b[i, 2:], rest[:, 2:]) - np.maximum(b[i, :2], rest[:, :2]), 0, None), axis=1)
        iou = inter / (area[i] + area[i + 1:] - inter)
        alive[i + 1:] &= ~((iou >= iou_thr) & (agnostic | (cls[i + 1:] == cls[i])))
    return b[kept], conf[kept], cls[kept]


def dynamic_detector(classes: int = 2, size: int = 64) -> onnx.ModelProto:
    """A tiny anchor-based detector with a symbolic batch: output [batch, 3*A, 5+C] computed from the image."""
    h = onnx.helper
    anchors = 3 * sum((size // s) ** 2 for s in (8, 16, 32))
    nodes = [
        h.make_node("ReduceMean", ["images"], ["gray"], axes=[1], keepdims=0),
        h.make_node("Reshape", ["gray", "flat_shape"], ["flat"]),
        h.make_node("Slice", ["flat", "zero", "count", "one"], ["head"]),
        h.make_node("Reshape", ["head", "out_shape"], ["logits"]),
        h.make_node("Sigmoid", ["logits"], ["output0"]),
    ]
    ints = lambda name, v: h.make_tensor(name, onnx.TensorProto.INT64, [len(v)], v)  # noqa: E731
    graph = h.make_graph(
        nodes, "dyn",
        [h.make_tensor_value_info("images", FLOAT, ["batch", 3, size, size])],
        [h.make_tensor_value_info("output0", FLOAT, ["batch", anchors, 5 + classes])],
        initializer=[ints("flat_shape", [0, -1]), ints("zero", [0]), ints("count", [anchors * (5 + classes)]), ints("one", [1]),
                     ints("out_shape", [0, anchors, 5 + classes])],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    """Protobuf text format -> {field: [values]} (repeated fields collected; messages become dicts)."""
    tokens = _TOKEN.findall(re.sub(r"#[^\n]*", "", text)) + ["<eof>"]

    def message(i: int, end: str) -> tuple[dict[str, list[Any]], int]:
        fields: dict[str, list[Any]] = {}
        while tokens[i] != end:
            key, i = tokens[i], i + 1
            i += tokens[i] == ":"
            if tokens[i] == "[":
                i += 1
                while tokens[i] != "]":
                    v, i = value(i)
                    fields.setdefault(key, []).append(v)
                    i += tokens[i] == ","
                i += 1
            else:
                v, i = value(i)
                fields.setdefault(key, []).append(v)
        return fields, i + 1

    def value(i: int) -> tuple[Any, int]:
        t = tokens[i]
        if t == "{":
            return message(i + 1, "}")
        if t.startswith('"'):
            return json.loads(t), i + 1
        return (int(t) if re.fullmatch(r"-?\d+", t) else t), i + 1

    fields, _ = message(0, "<eof>")
    return fields
