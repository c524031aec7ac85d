"""torchq.graph: ONNX graphs (FP32 and QDQ) executed in torch equal ONNX Runtime; subgraphs; swappable quantizers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from qdq_graphs import fixed_scales, observed_scales, tensor_values, tiny_detector

from conftest import shared_path
from qyolo_trt.qdq.passes.lowbit import lower_bits
from qyolo_trt.data import list_images
from qyolo_trt.data.feeds import load_feeds
from qyolo_trt.defaults import default_calib
from qyolo_trt.qdq import quantize

torch = pytest.importorskip("torch")
from qyolo_trt.torchq.graph import TorchGraph  # noqa: E402
from qyolo_trt.torchq.quantizers import ActQuant, FixedWeight  # noqa: E402

TINY_FEEDS = {"images": np.random.default_rng(5).random((1, 3, 16, 16), dtype=np.float32)}


def _run(graph: TorchGraph, feeds: dict[str, np.ndarray], outputs=None) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {k: v.numpy() for k, v in graph({k: torch.from_numpy(v) for k, v in feeds.items()}, outputs).items()}


def _close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4, magnitude: float = 0.0) -> bool:
    """Equal up to ``rtol`` of the larger of ``b``'s and the inputs' ``magnitude`` (float summation order)."""
    scale = max(float(np.abs(b).max(initial=0)), magnitude, 1e-6)
    return a.shape == b.shape and bool(np.all(np.abs(a.astype(np.float64) - b) <= rtol * scale))


def assert_steps_match_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    """Every step, fed ONNX Runtime's values of its inputs, reproduces ONNX Runtime's outputs (all steps, one by one:
    whole-graph differences of QDQ models come from rounding flips after float summation-order differences)."""
    ref = tensor_values(model, feeds)
    graph = TorchGraph(model)
    checked = 0
    for step in graph.steps:
        outs = [o for o in step.outputs if o in ref]
        given = {n: ref[n] for n in step.inputs if n in ref} | feeds  # feeds: for shape (int64) inputs, recomputed
        if not outs or step.op == "Weight":
            continue
        got = _run(graph, given, outs + [n for n in step.inputs if n and n not in given])
        values = {**given, **got}
        magnitude = max((float(np.abs(values[n]).max(initial=0)) for n in step.inputs if n in values and values[n].dtype == np.float32), default=0.0)
        bad = [o for o in outs if not _close(got[o], ref[o], magnitude=magnitude)]
        assert not bad, f"{step.op} {step.name}: {bad}"
        checked += 1
    assert checked > 0.5 * len(graph.steps)


def assert_graph_matches_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], min_sqnr_db: float) -> None:
    ref = tensor_values(model, feeds)
    got = _run(TorchGraph(model), feeds)
    for name, value in got.items():
        noise = np.square(value.astype(np.float64) - ref[name]).sum()
        assert noise == 0 or 10 * np.log10(np.square(ref[name].astype(np.float64)).sum() / noise) >= min_sqnr_db, name


@pytest.mark.parametrize("mode", ["symmetric", "shifted", "shifted-padded", "asymmetric"])
def test_tiny_qdq_equals_ort(mode):
    fp32 = tiny_detector()
    padded = mode == "shifted-padded"  # a padded conv's input shifted through a Pad (rules/shift.py)
    qdq = quantize(fp32, observed_scales(fp32, TINY_FEEDS), mode="shifted" if padded else mode, shift_padded=padded).model
    assert not padded or any(n.op_type == "Pad" for n in qdq.graph.node)
    assert_graph_matches_ort(fp32, TINY_FEEDS, 100)
    assert_steps_match_ort(qdq, TINY_FEEDS)
    assert_graph_matches_ort(qdq, TINY_FEEDS, 60)


def test_lowbit_clip_is_folded_into_the_quantizer():
    fp32 = tiny_detector()
    low = lower_bits(quantize(fp32, observed_scales(fp32, TINY_FEEDS)).model, fp32, 4)
    graph = TorchGraph(low)
    assert {(a.qmin, a.qmax) for a in graph.acts.values()} == {(-7, 7)}
    assert {int(np.abs(w.integers()).max()) for w in graph.weights.values()} == {7}
    assert not any(s.op == "Clip" for s in graph.steps)
    assert_steps_match_ort(low, TINY_FEEDS)
    assert_graph_matches_ort(low, TINY_FEEDS, 60)


def test_subgraph_runs_between_given_tensors():
    fp32 = tiny_detector()
    ref = tensor_values(fp32, TINY_FEEDS)
    graph = TorchGraph(fp32)
    got = _run(graph, {"cv2_act": ref["cv2_act"]}, ["cv4_act"])  # cv3 -> Resize -> cv4 only
    assert _close(got["cv4_act"], ref["cv4_act"])
    assert [s.name for s, _ in graph.plan(("cv2_act",), ("cv4_act",)) if s.op == "Conv"] == ["cv3/Conv", "cv4/Conv"]
    with pytest.raises(Exception, match="cannot be computed"):
        _run(graph, {"cv3_act": ref["cv3_act"]}, ["cv2_act"])


def test_swapped_quantizers_change_the_output():
    fp32 = tiny_detector()
    qdq = quantize(fp32, observed_scales(fp32, TINY_FEEDS)).model
    graph = TorchGraph(qdq)
    base = _run(graph, TINY_FEEDS)
    w = graph.weight("cv3.weight")
    graph.set_weight("cv3.weight", FixedWeight(w.integers() // 2, w.scale.numpy().ravel() * 2, 0))  # same grid values
    graph.set_quantization(False)
    unq = _run(graph, TINY_FEEDS)
    graph.set_quantization(True)
    graph.acts[graph.act_keys["cv3_act"]] = ActQuant(1.0, 0, -127, 127)  # a coarse step on cv3's output
    coarse = _run(graph, TINY_FEEDS)
    name = graph.output_names[0]
    assert not np.allclose(base[name], unq[name]) and not np.allclose(base[name], coarse[name])
    assert np.allclose(_run(graph, {"cv3_act": np.full((1, 8, 16, 16), 0.4, np.float32)}, ["cv3_act_dequantized"])["cv3_act_dequantized"], 0.0)


@pytest.fixture(scope="module")
def bus_feeds() -> dict[str, np.ndarray]:
    return load_feeds(onnx.load(shared_path("weights/yolov5n.onnx")), [shared_path("bus.jpg")], 1)[0]


@pytest.mark.parametrize("name", ["structure/yolov8n", "structure/yolo11n", "structure/yolov5nu"])
def test_structure_models_equal_ort(name, bus_feeds):
    fp32 = onnx.load(shared_path(f"{name}.onnx"))
    assert_graph_matches_ort(fp32, bus_feeds, 100)
    qdq = quantize(fp32, fixed_scales(fp32), mode="shifted").model
    assert_steps_match_ort(qdq, bus_feeds)


@pytest.mark.parametrize("name", ["yolov5n", "fall_yolov8s"])
def test_real_models_equal_ort(name, bus_feeds):
    fp32 = onnx.load(shared_path(f"weights/{name}.onnx"))
    assert_graph_matches_ort(fp32, bus_feeds, 100)
    qdq = quantize(fp32, observed_scales(fp32, bus_feeds), mode="shifted").model
    assert_steps_match_ort(qdq, bus_feeds)
    assert_graph_matches_ort(qdq, bus_feeds, 35)  # rounding flips only: QDQ vs FP32 is ~25-30 dB
    if name == "yolov5n":
        assert_steps_match_ort(lower_bits(qdq, fp32, 4), bus_feeds)


def test_blocks_compare_the_head_before_its_float_conv():
    """The tiny detector cut into blocks: every node in exactly one block, blocks in dependency order; the block of
    the float head conv is compared on that conv's input, never on the decode after it; every other block on its
    outputs."""
    from qyolo_trt.torchq.blocks import partition

    fp32 = tiny_detector()
    graph = TorchGraph(quantize(fp32, observed_scales(fp32, TINY_FEEDS)).model)
    blocks = partition(graph)
    steps = [s.name for b in blocks for s in b.steps]
    assert len(steps) == len(set(steps)) == len([s for s in graph.steps if not s.chain and s.op not in ("Weight", "Bias")])
    available = set(graph.input_names)
    for block in blocks:
        assert set(block.raw_inputs) <= available
        available.update(block.outputs)
    head = next(b for b in blocks if any(s.name.startswith("head") and s.op == "Conv" for s in b.steps))
    head_conv = next(s for s in head.steps if s.op == "Conv")
    assert head_conv.inputs[1] not in graph.weight_keys  # the head conv stays float
    assert head.targets == [head_conv.inputs[0]]
    assert all(b.targets == b.outputs for b in blocks if b is not head)


def test_yolov8_head_blocks_stop_before_the_decode():
    """YOLOv8's head ends in float convs (box and class) followed by a decode with a float DFL conv and batch-1
    reshapes: the head block is compared on the 6 float head convs' inputs only (not at the DFL conv after the
    decode), and those targets compute for a batch of 2."""
    from qyolo_trt.calib import calibrate
    from qyolo_trt.torchq.blocks import partition

    fp32 = onnx.load(shared_path("structure/yolov8n.onnx"))
    images = [str(p) for p in list_images(default_calib())[:1]]
    feeds = load_feeds(fp32, images, 1)
    graph = TorchGraph(quantize(fp32, calibrate(fp32, images)["uh"]).model)
    head = partition(graph)[-1]
    floats = [s for s in head.steps if s.op == "Conv" and s.inputs[1] not in graph.weight_keys]
    assert len(floats) == 7 and len(head.targets) == 6  # 3 box + 3 class convs; the DFL conv is the 7th
    assert set(head.targets) == {s.inputs[0] for s in floats[:-1]}
    x = torch.from_numpy(np.concatenate([feeds[0]["images"]] * 2))
    fgraph = TorchGraph(fp32)
    with torch.no_grad():
        given = {n: fgraph({"images": x}, [n])[n] for n in head.raw_inputs}
        out = graph(given, head.targets)
    assert all(v.shape[0] == 2 for v in out.values())
