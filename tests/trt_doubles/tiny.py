"""A tiny two-conv ONNX model with a dynamic batch: conv1 quantized (Q/DQ), conv2 float -- a miniature YOLO head split."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_model(quantized: bool = True, batch: int | str = "N") -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(2, 4, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(w2, "w2")]
    nodes = []
    x, w = "x", "w1"
    if quantized:
        s1 = np.abs(w1).reshape(4, -1).max(1) / 127
        inits += [
            numpy_helper.from_array(np.round(w1 / s1[:, None, None, None]).astype(np.int8), "w1_q"),
            numpy_helper.from_array(s1.astype(np.float32), "w1_s"),
            numpy_helper.from_array(np.zeros(4, np.int8), "w1_z"),
            numpy_helper.from_array(np.array(1 / 127, np.float32), "x_s"),
            numpy_helper.from_array(np.array(0, np.int8), "x_z"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"], name="x_QuantizeLinear"),
            helper.make_node("DequantizeLinear", ["x_q", "x_s", "x_z"], ["x_dq"], name="x_DequantizeLinear"),
            helper.make_node("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1_dq"], name="w1_DequantizeLinear", axis=0),
        ]
        x, w = "x_dq", "w1_dq"
    else:
        inits.append(numpy_helper.from_array(w1, "w1"))
    nodes += [
        helper.make_node("Conv", [x, w], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
