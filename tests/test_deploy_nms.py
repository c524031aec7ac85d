"""`add_efficient_nms`: the EfficientNMS_TRT graph on the real yolov5n (anchor-based) and yolov8n (anchor-free).

ONNX Runtime cannot run the plugin, so the plugin node is checked structurally and the in-graph decode
feeding it is run in ORT (plugin removed, its inputs exposed) and compared with the raw head output
decoded in numpy. A numpy emulation of the plugin on those inputs must find bus.jpg's objects.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from deploy_helpers import dynamic_detector, efficient_nms_reference, expose_plugin_inputs

from qyolo_trt.backends.ort.session import make_session
from qyolo_trt.data import ImageLoader
from qyolo_trt.deploy.nms import PLUGIN_OP, add_efficient_nms
from qyolo_trt.errors import QyoloError
from qyolo_trt.model import NMS_OUTPUTS, inspect_detector, load_detector

INT32, FLOAT = onnx.TensorProto.INT32, onnx.TensorProto.FLOAT


@pytest.fixture(scope="module", params=["yolov5n", "yolov8n"])
def detector(request, yolov5n_onnx, structure_models):
    path = yolov5n_onnx if request.param == "yolov5n" else structure_models["yolov8n"]
    model, info = load_detector(path)
    return request.param, model, info


def _plugin(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [n for n in model.graph.node if n.op_type == PLUGIN_OP]
    assert len(nodes) == 1, [n.op_type for n in model.graph.node[-5:]]
    return nodes[0]


def _io(values) -> list[tuple[str, int, list]]:
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]) for v in values]


def test_plugin_node_and_outputs(detector) -> None:
    _, model, info = detector
    out = add_efficient_nms(model, info, score_threshold=0.3, iou_threshold=0.5, max_det=37, class_agnostic=True)
    node = _plugin(out)
    assert node.domain == ""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs.pop("score_threshold") == pytest.approx(0.3) and attrs.pop("iou_threshold") == pytest.approx(0.5)
    assert attrs == {
        "plugin_version": b"1", "background_class": -1, "box_coding": 1, "max_output_boxes": 37,
        "score_activation": 0, "class_agnostic": 1,
    }
    n = info.input_shape[0]
    assert _io(out.graph.output) == [
        ("num_dets", INT32, [n, 1]), ("det_boxes", FLOAT, [n, 37, 4]), ("det_scores", FLOAT, [n, 37]), ("det_classes", INT32, [n, 37]),
    ]
    assert list(node.output) == list(NMS_OUTPUTS)
    # the plugin's inputs: boxes [N, A, 4] and scores [N, A, C]
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in out.graph.value_info}
    anchors = info.output_shape[2] if info.layout == "anchor_free" else info.output_shape[1]
    assert [shapes[t] for t in node.input] == [[n, anchors, 4], [n, anchors, info.num_classes]]
    # the detector body is untouched: every original node survives under its name, inputs and ir version kept
    assert {x.name for x in model.graph.node} <= {x.name for x in out.graph.node}
    assert out.ir_version == model.ir_version and _io(out.graph.input) == _io(model.graph.input)
    assert inspect_detector(out).layout == "nms"


def _numpy_decode(raw: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    rows = raw.transpose(0, 2, 1) if layout == "anchor_free" else raw
    if layout == "anchor_free":
        return rows[..., :4], rows[..., 4:]
    return rows[..., :4], rows[..., 5:] * rows[..., 4:5]


def test_in_graph_decode_matches_numpy(detector, bus_jpg) -> None:
    name, model, info = detector
    out = add_efficient_nms(model, info)
    probe = expose_plugin_inputs(out, info.output_names[0])
    image = next(iter(ImageLoader([bus_jpg], imgsz=info.imgsz))).images
    raw, boxes, scores = make_session(probe.SerializeToString()).run(None, {info.input_name: image})
    want_boxes, want_scores = _numpy_decode(raw, info.layout)
    np.testing.assert_array_equal(boxes, want_boxes)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6, atol=0)
    if name == "yolov5n":  # real weights: the plugin's view of bus.jpg holds its persons and its bus
        det_boxes, _, det_classes = efficient_nms_reference(boxes[0], scores[0], 0.25, 0.45, 100)
        assert sorted(set(det_classes.tolist())) == [0, 5]  # COCO person, bus
        assert (det_classes == 0).sum() == 3 and (det_classes == 5).sum() == 1  # data README: 3 persons, a bus
        bus = det_boxes[det_classes == 5][0]
        assert bus[2] - bus[0] > info.imgsz[1] * 0.7  # the bus spans most of the letterboxed width


def test_dynamic_batch_keeps_symbolic_batch_and_decodes_each_image() -> None:
    model = dynamic_detector()
    info = inspect_detector(model)
    assert info.dynamic_batch and info.layout == "anchor_based"
    out = add_efficient_nms(model, info, max_det=10)
    assert [s for _, _, s in _io(out.graph.output)] == [["batch", 1], ["batch", 10, 4], ["batch", 10], ["batch", 10]]
    probe = expose_plugin_inputs(out, "output0")
    images = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    raw, boxes, scores = make_session(probe.SerializeToString()).run(None, {"images": images})
    assert boxes.shape == (3, raw.shape[1], 4) and scores.shape == (3, raw.shape[1], 2)
    want_boxes, want_scores = _numpy_decode(raw, "anchor_based")
    np.testing.assert_array_equal(boxes, want_boxes)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"score_threshold": 1.5}, ("score threshold", "1.5")),
        ({"iou_threshold": 0.0}, ("iou threshold",)),
        ({"max_det": 0}, ("max detections",)),
    ],
)
def test_bad_options_are_user_errors(kwargs, words) -> None:
    model = dynamic_detector()
    with pytest.raises(QyoloError) as exc:
        add_efficient_nms(model, inspect_detector(model), **kwargs)
    assert all(w in str(exc.value).lower() for w in words), exc.value


def test_nms_twice_is_refused() -> None:
    model = dynamic_detector()
    once = add_efficient_nms(model, inspect_detector(model))
    with pytest.raises(QyoloError, match="already ends in EfficientNMS"):
        add_efficient_nms(once, inspect_detector(once))


def test_tensorrt_rtx_parses_nms_graph_iff_it_has_the_plugin(yolov5n_onnx) -> None:
    """TensorRT-RTX ships no EfficientNMS_TRT creator (1.7): its parser must then name the plugin node it rejects."""
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed (pip install 'qyolo-trt[rtx]')")
    logger = trt.Logger(trt.Logger.ERROR)
    trt.init_libnvinfer_plugins(logger, "")
    has_plugin = any(c.name == PLUGIN_OP for c in trt.get_plugin_registry().all_creators)
    model, info = load_detector(yolov5n_onnx)
    network = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(add_efficient_nms(model, info).SerializeToString())
    errors = " ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
    if has_plugin:
        assert ok, errors
        assert [network.get_output(i).name for i in range(network.num_outputs)] == list(NMS_OUTPUTS)
    else:
        assert not ok and PLUGIN_OP in errors and "plugin not found" in errors.lower(), errors
