"""The quantize pipeline: one validated config, passes in registry order, and ``run`` byte-identical to calling
the rewrite and each pass by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnx
import pytest
from qdq_graphs import fixed_scales, fragile_detector, observed_scales, tiny_detector

from qyolo_trt.data.feeds import load_feeds
from qyolo_trt.defaults import default_calib
from qyolo_trt.errors import QyoloError
from qyolo_trt.qdq import QuantizeConfig, quantize
from qyolo_trt.qdq.passes import registered
from qyolo_trt.qdq.passes.bias_correction import bias_correct
from qyolo_trt.qdq.passes.float16 import to_float16
from qyolo_trt.qdq.pipeline import run
from qyolo_trt.qdq.quantize import store_report

QDQ = Path(__file__).resolve().parent.parent / "qyolo_trt" / "qdq"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"fallback_k": 1, "fallback_db": 30.0}, "at most one of --auto-fallback, --fallback-budget"),
        ({"fallback_k": 1, "bits": 4}, "--bits below 8 does not combine with --auto-fallback"),
        ({"bias_correction": True, "bits": 4}, "--bits below 8 does not combine with --bias-correction"),
        ({"float_dtype": "fp16", "bits": 4}, "--float-dtype fp16 does not combine with --bits below 8"),
        ({"mode": "shifted", "bits": 4}, "symmetric and asymmetric modes"),
        ({"io_dtype": "fp16"}, "--io-dtype fp16 needs --float-dtype fp16"),
        ({"bits": 9}, "--bits must be in 2..8"),
        ({"fallback_k": -1}, "--auto-fallback must be >= 0"),
        ({"mode": "int4"}, "unknown mode 'int4'"),
        ({"weight_clip": "l1"}, "unknown weight clip 'l1'"),
        ({"keep_float": ("neck",)}, "unknown keep-float part"),
        ({"reconstruct": True, "reconstruct_iters": -1}, "--reconstruct-iters must be >= 0"),
    ],
)
def test_combinations_that_do_not_compose_are_refused_on_construction(options: dict, words: str) -> None:
    with pytest.raises(QyoloError, match=words):
        QuantizeConfig(**options)


def test_mode_defaults_to_shifted_at_8_bits_and_symmetric_below() -> None:
    assert QuantizeConfig().mode == "shifted"
    assert QuantizeConfig(bits=4).mode == "symmetric"
    assert QuantizeConfig(exclude=["a"]).exclude == ("a",)  # frozen and hashable fields


def test_replace_resolves_the_defaults_again() -> None:
    """``config.replace`` re-resolves what construction resolved (mode, widths, float parts) unless given; the
    ``quantize(config=..., bits=4)`` override goes through it (``dataclasses.replace`` kept W8A8 and shifted)."""
    low = QuantizeConfig().replace(bits=4)
    assert (low.weight_bits, low.act_bits, low.mode, low.keep_float) == (4, 4, "symmetric", ("head", "first-conv"))
    assert QuantizeConfig().replace(target="openvino").mode == "asymmetric"
    assert QuantizeConfig(bits=4).replace(bits=8) == QuantizeConfig()
    kept = QuantizeConfig(mode="asymmetric", keep_float=("head",), weight_bits=8, bits=4).replace(bits=6)
    assert (kept.mode, kept.keep_float, kept.weight_bits, kept.act_bits) == ("asymmetric", ("head",), 8, 6)  # given: kept
    model = tiny_detector()
    report = quantize(model, fixed_scales(model), QuantizeConfig(), bits=4).report  # the below-8-bit placement
    assert report["mode"] == "symmetric" and {n["reason"] for n in report["float_nodes"]} == {"head", "first-conv"}


def test_passes_run_in_registry_order() -> None:
    assert [p.name for p in registered()] == ["fallback", "lowbit", "reconstruction", "bias_correction", "float16"]
    config = QuantizeConfig(bias_correction=True, float_dtype="fp16")
    assert [p.name for p in registered() if p.enabled(config)] == ["bias_correction", "float16"]


@pytest.mark.parametrize("mode", ["symmetric", "shifted", "asymmetric"])
def test_plain_config_is_the_rewrite(mode: str) -> None:
    model = tiny_detector()
    scales = fixed_scales(model)
    got = run(model, scales, QuantizeConfig(mode=mode))
    want = quantize(model, scales, mode=mode)
    assert got.model.SerializeToString() == want.model.SerializeToString()
    assert got.report == want.report and "bias_correction" not in got.report


def test_composed_passes_equal_the_direct_call_sequence() -> None:
    """rewrite -> bias correction -> fp16, composed by ``run``, writes exactly the bytes of the hand-made sequence."""
    model = fragile_detector()
    feeds = load_feeds(model, default_calib(), 2)
    scales = observed_scales(model, feeds[0])
    config = QuantizeConfig(mode="shifted", bias_correction=True, bias_images=default_calib(), bias_num_images=2, float_dtype="fp16")
    got = run(model, scales, config)
    rewrite = quantize(model, scales, mode="shifted")
    corrected, deltas = bias_correct(rewrite.model, model, feeds)
    report = {**rewrite.report, "bias_correction": {"images": 2, "convs": len(deltas)}, "float_dtype": "fp16", "io_dtype": "fp32"}
    want, _ = to_float16(corrected)
    store_report(want, report)
    assert got.report == report
    assert got.model.SerializeToString() == want.SerializeToString()


def test_mse_weight_clip_combines_with_fallback() -> None:
    """Refused before the pipeline had one owner: the fallback dropped the weight clip."""
    model = fragile_detector()
    scales = observed_scales(model, load_feeds(model, default_calib(), 1)[0])
    config = QuantizeConfig(mode="symmetric", weight_clip="mse", fallback_k=1, fallback_images=default_calib(), fallback_num_images=2)
    result = run(model, scales, config)
    assert result.report["weight_clip"] == "mse" and result.report["fallback"]["k"] == 1
    kept = result.report["fallback"]["layers"][0]["nodes"]
    plain = quantize(model, scales, mode="symmetric", weight_clip="mse", exclude=[f"^{n}$" for n in kept])
    weights = lambda m: {t.name: t.raw_data for t in m.graph.initializer if t.name.endswith("_int8")}  # noqa: E731
    assert weights(result.model) == weights(plain.model)  # the mse clip reached every quantized weight


def _imports(path: Path) -> set[str]:
    """The qyolo_trt subpackages ``path`` imports (relative imports resolved)."""
    parts = path.relative_to(QDQ.parent).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(parts[:-1])[: len(parts) - node.level]
            module = base + (node.module.split(".") if node.module else [])
            out.add(module[0] if module else "")
    return out


def test_qdq_reaches_analysis_and_eval_only_through_the_pipeline() -> None:
    offenders = {str(p.relative_to(QDQ)): _imports(p) & {"analysis", "eval"} for p in QDQ.rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {"pipeline.py": {"analysis"}}


def _tiny_scale_qdq() -> onnx.ModelProto:
    """x -> Q/DQ (scale 1e-6) -> Conv with per-channel int8 weights whose first channel scale is 1e-6."""
    from onnx import TensorProto, helper, numpy_helper

    q = np.array([[[[100]]], [[[-50]]]], dtype=np.int8)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (np.array(1e-6, np.float32), "x_s"), (np.array(0, np.int8), "x_z"), (q, "w_int8"),
        (np.array([1e-6, 0.1], np.float32), "w_s"), (np.zeros(2, np.int8), "w_z"), (np.zeros(2, np.float32), "b"))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_int8", "w_s", "w_z"], ["w"], axis=0),
             helper.make_node("Conv", ["xd", "w", "b"], ["y"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fp16_raises_scales_below_the_smallest_normal_and_rerounds_weights() -> None:
    """Random-init models have near-constant tensors whose scales float16 would flush to 0: they are raised to float16's
    smallest normal value; a weight's integers follow its raised channel scale (channel 1 is untouched)."""
    import onnxruntime as ort

    tiny = float(np.finfo(np.float16).tiny)
    model, raised = to_float16(_tiny_scale_qdq())
    assert raised == ["w_s", "x_s"]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert inits["x_s"] == np.float16(tiny) and inits["w_s"].dtype == np.float16
    w = inits["w_int8"].astype(np.float64).ravel() * inits["w_s"].astype(np.float64)
    assert inits["w_int8"].ravel()[1] == -50 and abs(w[0] - 100e-6) <= tiny / 2  # re-rounded: 100e-6 / tiny -> 2
    x = np.full((1, 1, 2, 2), 3e-4, np.float32)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.isfinite(y).all() and abs(float(y[0, 1, 0, 0]) - 3e-4 * -5.0) < 1e-4


def test_reconstruction_pass_changes_only_integers_and_biases_and_reports() -> None:
    """The pass runs between low-bit lowering and bias correction: same graph and activation scales, other weight integers."""
    pytest.importorskip("torch")
    model = fragile_detector()
    scales = observed_scales(model, load_feeds(model, default_calib(), 1)[0])
    config = QuantizeConfig(mode="shifted", reconstruct=True, reconstruct_images=default_calib(), reconstruct_num_images=2,
                            reconstruct_iters=20)
    got, plain = run(model, scales, config), quantize(model, scales, mode="shifted")
    rc = got.report["reconstruction"]
    assert rc["images"] == 2 and rc["iters"] == 20 and rc["weights"] > 0 and rc["loss_after"] <= rc["loss_before"]
    assert [n.op_type for n in got.model.graph.node] == [n.op_type for n in plain.model.graph.node]
    before = {i.name: onnx.numpy_helper.to_array(i) for i in plain.model.graph.initializer}
    after = {i.name: onnx.numpy_helper.to_array(i) for i in got.model.graph.initializer}
    changed = {n for n in before if not np.array_equal(before[n], after[n])}
    assert changed and all(n.endswith("_int8") or "bias" in n or n.endswith(".bias") for n in changed), changed
    assert run(model, scales, config).model.SerializeToString() == got.model.SerializeToString()  # seeded: deterministic


def test_reconstruct_without_torch_is_one_error_line(tmp_path) -> None:
    """Torch is optional: ``--reconstruct`` without it says how to install it, exit 2, nothing written."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; sys.argv = ['qyolo-trt', 'quantize', '--images', sys.argv[1], "
            "'--num-images', '1', '--reconstruct', '-o', sys.argv[2]]; from qyolo_trt.cli import main; main()")
    out = tmp_path / "q.onnx"
    proc = subprocess.run([sys.executable, "-c", code, str(default_calib()), str(out)], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.splitlines()  # refused before calibrating
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: torch") and "qyolo-trt[export]" in lines[0], proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_ort_runs_fp16_qdq_models_with_concat_groups(tmp_path) -> None:
    """ORT fuses a Concat's Q/DQ into QLinearConcat, whose kernel rejects float16 scales: the runner keeps Q/DQ unfused."""
    from qyolo_trt.backends import get_runner

    model = tiny_detector()
    fp16 = run(model, fixed_scales(model), QuantizeConfig(mode="symmetric", float_dtype="fp16")).model
    assert any(n.op_type == "Concat" for n in fp16.graph.node)
    onnx.save(fp16, tmp_path / "m.onnx")
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    with get_runner("ort", tmp_path / "m.onnx") as runner:
        (y,) = runner.infer({"images": x}).values()
    assert y.dtype == np.float32 and np.isfinite(y).all()
