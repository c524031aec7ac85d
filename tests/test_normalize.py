"""Graph normalisation: constant Identity chains (torch's merged initializers) become each conv's own constants."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from qdq_graphs import observed_scales, tiny_detector
from qyolo_trt import Recipe, quantize
from qyolo_trt.normalize import constant_identities, normalize


def _merged_biases(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with cv3's bias replaced by a two-Identity chain from cv1's bias, as torch's exporter writes equal biases."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    conv = next(n for n in g.node if n.name == "cv3/Conv")
    src = next(n for n in g.node if n.name == "cv1/Conv").input[2]
    init = {t.name: t for t in g.initializer}
    # make the two biases equal, then route cv3's through Identity(Identity(cv1.bias))
    g.initializer.remove(init[conv.input[2]])
    g.node.insert(0, helper.make_node("Identity", [src], ["mid"], name="Identity_0"))
    g.node.insert(1, helper.make_node("Identity", ["mid"], ["cv3.bias.merged"], name="Identity_1"))
    conv.input[2] = "cv3.bias.merged"
    return out


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": x})[0]


def test_identity_chain_becomes_an_own_initializer():
    model = _merged_biases(tiny_detector())
    assert [n.name for n in constant_identities(model.graph)] == ["Identity_0", "Identity_1"]
    norm = normalize(model)
    onnx.checker.check_model(norm)
    assert not any(n.op_type == "Identity" for n in norm.graph.node)
    conv = next(n for n in norm.graph.node if n.name == "cv3/Conv")
    init = {t.name: numpy_helper.to_array(t) for t in norm.graph.initializer}
    src = next(n for n in norm.graph.node if n.name == "cv1/Conv").input[2]
    assert conv.input[2] in init and conv.input[2] != src  # its own copy: editing one bias leaves the other alone
    np.testing.assert_array_equal(init[conv.input[2]], init[src])
    assert "mid" not in init  # intermediate links that nothing reads are not kept
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    np.testing.assert_array_equal(_run(norm, x), _run(model, x))


def test_normalize_is_a_no_op_on_normal_graphs():
    model = tiny_detector()
    assert normalize(model) is model  # untouched: same hash, existing scales files stay valid
    once = normalize(_merged_biases(model))
    assert normalize(once) is once


def test_bias_correction_edits_each_merged_bias_on_its_own():
    """After normalisation two convs that shared one merged bias are corrected independently."""
    from qyolo_trt.qdq import quantize as rewrite
    from qyolo_trt.qdq.passes.bias_correction import bias_correct

    fp32 = normalize(_merged_biases(tiny_detector()))
    rng = np.random.default_rng(2)
    feeds = [{"images": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(2)]
    scales = observed_scales(fp32, feeds[0])
    scales.tensors["images"].scale *= 8  # a coarse input grid: visible mean errors to correct
    corrected, deltas = bias_correct(rewrite(fp32, scales).model, fp32, feeds)
    biases = {t.name: numpy_helper.to_array(t) for t in corrected.graph.initializer}
    convs = {n.name: n.input[2] for n in fp32.graph.node if n.op_type == "Conv"}
    before = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    moved = {c for c, b in convs.items() if b in biases and not np.array_equal(biases[b], before[b])}
    assert {"cv1/Conv", "cv3/Conv"} <= moved and not np.array_equal(biases[convs["cv1/Conv"]], biases[convs["cv3/Conv"]])


@pytest.mark.parametrize("name", ["yolov8n", "yolo11n", "yolov5nu"])
def test_default_quantize_pipeline_on_ultralytics_exports(structure_models, name):
    """Ultralytics anchor-free exports (dozens of merged biases): the build recipe (shifted + bias correction) runs."""
    from qyolo_trt.defaults import default_calib

    result = quantize(structure_models[name], images=default_calib(), num_images=2,
                      config=Recipe(mode="shifted", bias_correction=True, bias_num_images=2))
    assert result.report["bias_correction"]["convs"] == result.report["quantized"]["Conv"]
    assert not any(n.op_type == "Identity" for n in result.model.graph.node)
