"""torchq.reconstruct: AdaRound finds a brute-forced optimal rounding, block losses fall, the learned integers and
re-folded shift biases are written exactly, and the embedded yolov5n gets closer to FP32 on held-out images."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qdq_graphs import observed_scales, tiny_detector

from qyolo_trt.data import list_images
from qyolo_trt.data.feeds import load_feeds
from qyolo_trt.defaults import default_calib, default_model
from qyolo_trt.eval.evaluate import quality
from qyolo_trt.qdq import lint, quantize
from qyolo_trt.qdq.passes.lowbit import lower_bits

torch = pytest.importorskip("torch")
from qyolo_trt.torchq.graph import TorchGraph  # noqa: E402
from qyolo_trt.torchq.quantizers import AdaRoundWeight  # noqa: E402
from qyolo_trt.torchq.reconstruct import reconstruct  # noqa: E402
from qyolo_trt.torchq.writeback import write_back  # noqa: E402

TINY_FEEDS = [{"images": np.random.default_rng(s).random((1, 3, 16, 16), dtype=np.float32)} for s in range(4)]


def _integers(model: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name)).astype(np.int64)


def _one_conv(weight: np.ndarray) -> onnx.ModelProto:
    """images [1, 3, 8, 8] -> 1x1 Conv (1 output channel, no bias) -> out."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "w"], ["out"], name="/model.0/conv/Conv", kernel_shape=[1, 1])], "one_conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 8, 8])],
        [numpy_helper.from_array(weight, "w")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_adaround_finds_the_brute_forced_rounding():
    """Channels 1 and 2 carry the same signal (x2 ~ 0.5 x1); w1, w2 sit 0.3 and 0.45 steps above the grid:
    round-to-nearest rounds both down (error -0.525 x1), the best rounding rounds w2 up (error -0.025 x1)."""
    s = 1.0 / 127
    weight = np.array([127, 10.3, 20.45], np.float32).reshape(1, 3, 1, 1) * s  # channel max 127 s: the grid step is s
    rng = np.random.default_rng(0)
    x1 = rng.integers(20, 120, (8, 8))
    x = np.stack([rng.integers(-100, 100, (8, 8)), x1, np.rint(0.5 * x1)]).astype(np.float32)[None]
    x[0, 0, 0, 0] = 127
    x /= 127  # max |x| = 1: the activation grid step is 1 / 127 too, and the input quantization is lossless
    fp32 = _one_conv(weight)
    feeds = {"images": x}
    qdq = quantize(fp32, observed_scales(fp32, feeds), keep_float=()).model
    assert _integers(qdq, "w_int8").ravel().tolist() == [127, 10, 20]  # round to nearest
    w = weight.ravel() / s
    candidates = [np.floor(w) + np.array(up) for up in itertools.product((0, 1), repeat=3)]
    errors = [np.square(np.tensordot((c - w) * s, x[0], axes=1)).sum() for c in candidates]
    best = candidates[int(np.argmin(errors))]
    assert best.tolist() == [127, 10, 21]
    out, stats = reconstruct(qdq, fp32, [feeds], iters=300, batch=1, crop=1.0, drop_prob=0.0, refit_bias=False)
    assert _integers(out, "w_int8").ravel().tolist() == best.tolist()
    row = stats["blocks"][0]  # loss: squared error averaged over the 64 positions
    assert row["loss_before"] == pytest.approx(errors[0] / 64, rel=1e-3)
    assert row["loss_after"] == pytest.approx(min(errors) / 64, rel=1e-3) and min(errors) < 0.5 * errors[0]
    assert row["changed"] == 1


def _four_bit_weights(qdq: onnx.ModelProto) -> onnx.ModelProto:
    """W4A8: every int8 weight re-quantized (MinMax per channel) onto the 4-bit grid, still stored as int8."""
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    inits = {t.name: t for t in out.graph.initializer}
    for node in out.graph.node:
        if node.op_type == "DequantizeLinear" and inits.get(node.input[0], None) is not None and inits[node.input[0]].data_type == TensorProto.INT8:
            w = numpy_helper.to_array(inits[node.input[0]]) * numpy_helper.to_array(inits[node.input[1]]).reshape(-1, 1, 1, 1)
            scale = (np.abs(w).reshape(len(w), -1).max(axis=1) / 7).astype(np.float32)
            q = np.clip(np.rint(w / scale.reshape(-1, 1, 1, 1)), -7, 7).astype(np.int8)
            inits[node.input[0]].CopyFrom(numpy_helper.from_array(q, node.input[0]))
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(scale, node.input[1]))
    return out


@pytest.mark.parametrize("form", ["w4a8", "int4"])
def test_block_losses_fall_and_integers_stay_on_the_grid(form):
    """W4A8 (weight rounding dominates the error): no block's loss rises (a block whose learned rounding does worse than
    round-to-nearest is reverted), the total falls by over a tenth. W4A4 with int4
    weights (activation rounding dominates): the total still falls. Integers stay floor or ceil of w / s on [-7, 7].
    Without QDrop: the loss is measured on the fully quantized input, which QDrop optimises only half the time."""
    fp32 = tiny_detector()
    qdq = quantize(fp32, observed_scales(fp32, TINY_FEEDS[0])).model
    qdq = _four_bit_weights(qdq) if form == "w4a8" else lower_bits(qdq, fp32, 4)
    out, stats = reconstruct(qdq, fp32, TINY_FEEDS, iters=120, batch=2, seed=1, drop_prob=0.0, threads=1)
    if form == "w4a8":
        assert stats["loss_after"] < 0.9 * stats["loss_before"]
        assert all(r["loss_after"] <= r["loss_before"] for r in stats["blocks"])
    assert stats["loss_after"] < stats["loss_before"]
    before, after = TorchGraph(qdq), TorchGraph(out)
    changed = 0
    for name in before.weight_keys:
        q, q0 = after.weight(name).integers(), before.weight(name).integers()
        assert np.abs(q).max() <= 7 and np.abs(q - q0).max() <= 1
        changed += int((q != q0).sum())
    assert changed == sum(r["changed"] for r in stats["blocks"]) > 0
    assert [i.data_type for i in out.graph.initializer] == [i.data_type for i in qdq.graph.initializer]
    assert [n.op_type for n in out.graph.node] == [n.op_type for n in qdq.graph.node]


@pytest.mark.parametrize("target", ["openvino", "ort"])
def test_cpu_placements_reconstruct_and_onnx_runtime_agrees(target):
    """The CPU placements (zero points; openvino: no Q/DQ after Concat/MaxPool; ort: Q/DQ before each SiLU and on the
    sigmoid) reconstruct as they are: the loss falls, the graph and its target lint stay, and ONNX Runtime runs the
    written model's Q/DQ as the torch executor does (unfused: ORT's QLinear kernels requantize in integers and flip
    values on rounding ties)."""
    from qyolo_trt.qdq import QuantizeConfig
    from qyolo_trt.qdq.pipeline import run

    fp32 = tiny_detector()
    qdq = run(fp32, observed_scales(fp32, TINY_FEEDS[0]), QuantizeConfig(target=target, bias_images=None)).model
    out, stats = reconstruct(qdq, fp32, TINY_FEEDS, iters=60, batch=2, seed=1, drop_prob=0.0, threads=1)
    assert stats["loss_after"] < stats["loss_before"] and sum(r["changed"] for r in stats["blocks"]) > 0
    assert [n.op_type for n in out.graph.node] == [n.op_type for n in qdq.graph.node] and lint(out, target) == []
    import onnxruntime as ort

    graph, feeds = TorchGraph(out), TINY_FEEDS[1]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(out.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)
    with torch.no_grad():
        got = graph({"images": torch.from_numpy(feeds["images"])})
    for name, w in zip(graph.output_names, want):
        np.testing.assert_allclose(got[name].numpy(), w, rtol=1e-4, atol=1e-4)


def test_learnable_scales_group_through_a_maxpool_without_qdq():
    """OpenVINO's placement has no Q/DQ after a MaxPool: ``a`` -> Q/DQ -> MaxPool -> Concat with ``b`` -> Q/DQ still
    shares one scale (the placement grouped them), so the two quantizers learn one parameter."""
    from qyolo_trt.torchq.scales import learnable_scales

    def qdq(name: str) -> list[onnx.NodeProto]:
        return [helper.make_node("QuantizeLinear", [name, "s", "z"], [f"{name}_q"]),
                helper.make_node("DequantizeLinear", [f"{name}_q", "s", "z"], [f"{name}_dq"])]  # fmt: skip

    nodes = [helper.make_node("Sigmoid", ["images"], ["a"]), helper.make_node("Mul", ["images", "images"], ["b"]), *qdq("a"), *qdq("b"),
             helper.make_node("MaxPool", ["a_dq"], ["pool"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["pool", "b_dq"], ["out"], axis=1)]  # fmt: skip
    graph = helper.make_graph(nodes, "carried", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [numpy_helper.from_array(np.float32(0.1), "s"), numpy_helper.from_array(np.int8(0), "z")])  # fmt: skip
    torch_graph = TorchGraph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    params = learnable_scales(torch_graph)
    assert set(params) == {torch_graph.act_keys["a"], torch_graph.act_keys["b"]}
    assert len({id(p) for p in params.values()}) == 1


def test_same_seed_same_model():
    fp32 = tiny_detector()
    qdq = quantize(fp32, observed_scales(fp32, TINY_FEEDS[0]), mode="shifted").model
    a, _ = reconstruct(qdq, fp32, TINY_FEEDS, iters=20, seed=3)
    b, _ = reconstruct(qdq, fp32, TINY_FEEDS, iters=20, seed=3)
    assert a.SerializeToString() == b.SerializeToString()


def test_written_integers_are_the_learned_ones():
    fp32 = tiny_detector()
    qdq = lower_bits(quantize(fp32, observed_scales(fp32, TINY_FEEDS[0])).model, fp32, 4)
    graph = TorchGraph(qdq)
    floats = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    learned = {}
    for i, name in enumerate(graph.weight_keys):
        fixed = graph.weight(name)
        module = AdaRoundWeight(floats[name], fixed.scale.numpy().ravel(), fixed.axis, 7)
        module.alpha.data = torch.from_numpy(np.random.default_rng(i).normal(0, 2, module.alpha.shape).astype(np.float32))
        graph.set_weight(name, module)
        learned[name] = module.integers()
    out = write_back(qdq, graph, learned)
    onnx.checker.check_model(out)
    for name, q in learned.items():
        init = graph.weight_sources[name].integers
        assert next(t for t in out.graph.initializer if t.name == init).data_type == TensorProto.INT4
        assert np.array_equal(_integers(out, init), q)
        module = graph.weight(name)
        module.hard = True
        assert np.allclose(module().detach().numpy(), q * module.scale.numpy())  # what was optimised is what is written


def test_shifted_bias_refold_is_exact():
    """A conv reading ``x - c`` (1x1, or 3x3 through the Pad that took its padding): its written bias is the FP32 bias
    + c * sum(new W_dq), summed as the fold does."""
    fp32 = tiny_detector()
    qdq = quantize(fp32, observed_scales(fp32, TINY_FEEDS[0]), mode="shifted", shift_padded=True).model
    graph = TorchGraph(qdq)
    shifted = {c: graph.bias(c).shift for c in graph.bias_keys if graph.bias(c).shift}
    assert len(shifted) == 3  # cv2 and cv3 read shifted tensors, and cv4 its padded shifted input
    floats = {t.name: numpy_helper.to_array(t) for t in fp32.graph.initializer}
    changed = {}
    for conv in shifted:
        src = graph.bias_sources[conv]
        fixed = graph.weight(src.weight)
        module = AdaRoundWeight(floats[src.weight], fixed.scale.numpy().ravel(), fixed.axis, 127)
        module.alpha.data = torch.from_numpy(np.random.default_rng(1).normal(0, 2, module.alpha.shape).astype(np.float32))
        graph.set_weight(src.weight, module)
        changed[src.weight] = module.integers()
        assert not np.array_equal(changed[src.weight], fixed.integers())
    out = write_back(qdq, graph, changed)
    written = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    for conv, shift in shifted.items():
        src = graph.bias_sources[conv]
        w_dq = changed[src.weight].astype(np.float64) * graph.weight(src.weight).scale.double().numpy()
        expected = floats[src.initializer].astype(np.float64) + shift * w_dq.reshape(len(w_dq), -1).sum(axis=1)
        assert np.abs(written[src.initializer] - expected).max() <= 2 * np.spacing(np.abs(expected).max().astype(np.float32))  # float32 sums in any order
        graph.weight(src.weight).hard = True
        with torch.no_grad():
            optimised = graph.bias(conv)(graph.weight(src.weight)()).numpy()  # W_dq in float32 while optimising
        assert np.allclose(optimised, written[src.initializer], rtol=1e-6, atol=0)


def test_embedded_yolov5n_gets_closer_to_fp32():
    """8 steps per block on 2 of the 4 calibration images; scored on 4 other embedded images: head SQNR must rise,
    lint stays clean, every quantized conv (57 of 60: the head's 3 stay float) is reconstructed."""
    fp32 = onnx.load(default_model())
    images = [str(p) for p in list_images(default_calib())]
    calib, held_out = images[:4], images[12:16]
    from qyolo_trt.calib import calibrate

    qdq = quantize(fp32, calibrate(fp32, calib)["uh"], mode="shifted", shift_padded=True).model  # quantize --shift-padded
    assert any(n.op_type == "Pad" for n in qdq.graph.node)
    out, stats = reconstruct(qdq, fp32, load_feeds(fp32, calib, 2), iters=8, batch=1, crop=0.25)
    assert not [i for i in lint(out) if i.severity == "error"]
    before, after = quality(qdq, fp32, held_out), quality(out, fp32, held_out)
    assert after["sqnr_db"] > before["sqnr_db"] + 0.2, (before, after)
    assert stats["weights"] == 57


def test_learned_scales_stay_shared_and_are_written():
    """``learn_scales``: step sizes move, the image input's does not, every Q/DQ pair of a shared group (Concat,
    MaxPool, Resize) still carries one value, lint stays clean and ORT runs the written model as torch did. A W4A4 start:
    at 8 bits round-to-nearest is near optimal on this model, so most seeds keep no block (their scales reset)."""
    fp32 = tiny_detector()
    qdq = lower_bits(quantize(fp32, observed_scales(fp32, TINY_FEEDS[0]), mode="symmetric").model, fp32, 4)
    out, stats = reconstruct(qdq, fp32, TINY_FEEDS, iters=30, batch=2, seed=2, learn_scales=True, scale_lr=0.05, threads=1)
    assert stats["learn_scales"] and sum(b["kept"] for b in stats["blocks"]) >= 3, stats["blocks"]
    before, after = TorchGraph(qdq), TorchGraph(out)
    moved = {k for k in before.acts if float(before.acts[k].scale) != float(after.acts[k].scale)}
    assert moved and before.act_keys["images"] not in moved
    producer = {o: s for s in after.steps for o in s.outputs}
    for op in ("Concat", "MaxPool", "Resize"):
        for step in (s for s in after.steps if s.op == op):
            members = [producer[t].key for t in step.inputs[: 1 if op == "Resize" else None] if producer.get(t) and producer[t].op == "ActQuant"]
            members += [s.key for s in after.steps if s.op == "ActQuant" and s.inputs[0] == step.outputs[0]]
            assert len({float(after.acts[k].scale) for k in members}) == 1, (op, members)
    assert not [i for i in lint(out) if i.severity == "error"]
    import onnxruntime as ort

    x = TINY_FEEDS[3]["images"]
    ort_out = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    with torch.no_grad():
        torch_out = after({"images": torch.from_numpy(x)})[after.output_names[0]].numpy()
    assert np.allclose(ort_out, torch_out, atol=1e-4)
