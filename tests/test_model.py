"""Model loading and detector-layout recognition on the real models and on tiny hand-built graphs."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from qyolo_trt.errors import QyoloError
from qyolo_trt.model import inspect_detector, load_detector, load_onnx, model_hash


def tiny_model(in_shape, outputs: dict[str, list], opset: int = 17) -> onnx.ModelProto:
    """One input, each output an Identity of it: only the declared shapes matter to inspect_detector."""
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)
    outs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs.items()]
    nodes = [helper.make_node("Identity", ["images"], [name]) for name in outputs]
    graph = helper.make_graph(nodes, "tiny", [inp], outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_real_yolov5n_is_anchor_based(yolov5n_onnx):
    _, info = load_detector(yolov5n_onnx)
    assert (info.layout, info.num_classes, info.imgsz) == ("anchor_based", 80, (640, 640))
    assert info.input_name == "images" and info.output_shape == [1, 25200, 85]
    assert not info.dynamic_batch and info.opset == 17


def test_structure_models_are_anchor_free(structure_models):
    for path in structure_models.values():
        _, info = load_detector(path)
        assert (info.layout, info.num_classes, info.output_shape) == ("anchor_free", 80, [1, 84, 8400])


@pytest.mark.parametrize(
    ("in_shape", "out_shape", "layout", "classes"),
    [
        (["batch", 3, 320, 256], ["batch", 84, 1680], "anchor_free", 80),  # 40*32 + 20*16 + 10*8
        ([2, 3, 640, 640], [2, 25200, 7], "anchor_based", 2),
        ([1, 3, 640, 640], [1, 8400, 85], "anchor_based", 80),  # one anchor per cell
    ],
)
def test_layouts_from_shapes(in_shape, out_shape, layout, classes):
    info = inspect_detector(tiny_model(in_shape, {"output0": out_shape}))
    assert (info.layout, info.num_classes) == (layout, classes)
    assert info.imgsz == tuple(in_shape[2:]) and info.dynamic_batch == isinstance(in_shape[0], str)


def test_nms_head_layout():
    outputs = {"num_dets": [1, 1], "det_boxes": [1, 100, 4], "det_scores": [1, 100], "det_classes": [1, 100]}
    info = inspect_detector(tiny_model([1, 3, 640, 640], outputs))
    assert info.layout == "nms" and info.output_shape == [1, 100, 4]


@pytest.mark.parametrize(
    ("in_shape", "out_shape", "words"),
    [
        ([1, 3, 224, 224], [1, 1000], "expected [N,4+C,A] or [N,A,5+C]"),  # a classifier
        ([1, 1, 640, 640], [1, 84, 8400], "expected [N,3,H,W]"),  # one channel
        ([1, 3, "h", "w"], [1, 84, 8400], "fixed H, W"),
        ([1, 3, 640, 640], [1, 84, 8000], "[N,4+C,8400]"),  # anchor count off
    ],
)
def test_non_detectors_are_rejected(in_shape, out_shape, words):
    with pytest.raises(QyoloError, match="not a YOLO detector") as err:
        inspect_detector(tiny_model(in_shape, {"output0": out_shape}))
    assert words in str(err.value)


def test_two_inputs_rejected():
    model = tiny_model([1, 3, 640, 640], {"output0": [1, 84, 8400]})
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1]))
    with pytest.raises(QyoloError, match="expected 1 image input, found 2"):
        inspect_detector(model)


def test_load_onnx_errors(tmp_path, yolov5n_onnx):
    (tmp_path / "text.onnx").write_text("hello, not protobuf")
    (tmp_path / "cut.onnx").write_bytes(yolov5n_onnx.read_bytes()[:50_000])
    for path, words in [
        (tmp_path / "missing.onnx", "no such file"),
        (tmp_path, "is a directory"),
        (tmp_path / "text.onnx", "not a readable ONNX model"),
        (tmp_path / "cut.onnx", "not a readable ONNX model"),
    ]:
        with pytest.raises(QyoloError, match=words):
            load_onnx(path)


def test_model_hash_tracks_content():
    a = tiny_model([1, 3, 640, 640], {"output0": [1, 84, 8400]})
    b = tiny_model([1, 3, 640, 640], {"output0": [1, 84, 8400]})
    assert model_hash(a) == model_hash(b)
    b.graph.node[0].name = "renamed"
    assert model_hash(a) != model_hash(b)
