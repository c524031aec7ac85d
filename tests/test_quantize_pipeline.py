"""The quantize pipeline: one validated config, passes in registry order, and ``run`` byte-identical to calling
the rewrite and each pass by hand."""

from __future__ import annotations

import ast
from pathlib import Path

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
    ],
)
def test_combinations_that_do_not_compose_are_refused_on_construction(options: dict, words: str) -> None:
    with pytest.raises(QyoloError, match=words):
        QuantizeConfig(**options)


def test_mode_defaults_to_shifted_at_8_bits_and_symmetric_below() -> None:
    assert QuantizeConfig().mode == "shifted"
    assert QuantizeConfig(bits=4).mode == "symmetric"
    assert QuantizeConfig(exclude=["a"]).exclude == ("a",)  # frozen and hashable fields


def test_passes_run_in_registry_order() -> None:
    assert [p.name for p in registered()] == ["fallback", "lowbit", "bias_correction", "float16"]
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
    want = to_float16(corrected)
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
