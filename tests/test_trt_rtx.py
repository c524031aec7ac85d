"""Real TensorRT-RTX builds (ahead of time, no GPU) of the embedded yolov5n: FP32/FP16 directly, INT8 via the pipeline."""

from __future__ import annotations

import json
from collections import Counter

import pytest

pytest.importorskip("tensorrt_rtx")

from qyolo_trt.backends.tensorrt.builder import build_engine  # noqa: E402
from qyolo_trt.backends.tensorrt.sidecar import describe_engine, read_sidecar  # noqa: E402
from qyolo_trt.pipeline import BuildRequest, run_build  # noqa: E402
from qyolo_trt.defaults import default_model  # noqa: E402
from qyolo_trt.errors import QyoloError  # noqa: E402
from qyolo_trt.model import load_onnx  # noqa: E402
from qyolo_trt.qdq import head_conv_outputs  # noqa: E402


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    """`qyolo-trt build` defaults (INT8, RTX 4090 + T4), 4 calibration images to stay fast."""
    out = tmp_path_factory.mktemp("engines") / "yolov5n.engine"
    return out, run_build(BuildRequest(num_images=4, output=out))


def _head_conv_nodes() -> set[str]:
    model = load_onnx(default_model())
    heads = set(head_conv_outputs(model))
    return {n.name for n in model.graph.node if n.output[0] in heads}


def test_int8_engine_for_rtx4090_runs_every_conv_but_the_head_in_int8(default_build):
    out, result = default_build
    sm89 = next(e for e in result["engines"] if e["targets"] == ["sm89"])
    side = read_sidecar(sm89["engine"])
    head = _head_conv_nodes()
    assert len(head) == 3
    rep = side["report"]
    assert rep["conv_total"] == 60 and rep["conv_int8"] == 60 - len(head)
    assert set(rep["float_convs"]) == head
    assert side["backend"] == "tensorrt-rtx" and side["precision"] == "int8" and side["targets"] == ["sm89"]
    assert side["inputs"] == [{"name": "images", "shape": [1, 3, 640, 640], "dtype": "float32"}]
    assert side["outputs"] == [{"name": "output0", "shape": [1, 25200, 85], "dtype": "float32"}]
    assert side["batch"] == {"min": 1, "opt": 1, "max": 1} and side["layout"] == "anchor_based"
    assert side["scales_hash"] and side["model_hash"] and describe_engine(sm89["engine"])["engine_sha256_ok"]
    assert sum(rep["layers_by_type"].values()) == rep["num_layers"] > 0


def test_t4_gets_its_own_fp16_engine_with_a_warning(default_build):
    out, result = default_build
    assert [e["targets"] for e in result["engines"]] == [["sm89"], ["sm75"]]
    t4 = result["engines"][1]
    assert t4["engine"].endswith("yolov5n.sm75.engine") and t4["precision"] == "fp16" and t4["conv_int8"] == 0
    assert "no INT8 kernels for sm75" in t4["warnings"][0]
    side = read_sidecar(t4["engine"])
    assert side["options"]["precision_requested"] == "int8"
    assert Counter(d for layer in side["report"]["layers"] for d in layer["input_dtypes"]).most_common(1)[0][0] == "Half"
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == sorted(["yolov5n.sm89.engine", "yolov5n.sm89.engine.json", "yolov5n.sm75.engine",
                            "yolov5n.sm75.engine.json", "yolov5n.uh.scales.json", "yolov5n.qdq.onnx"])


def test_one_rtx_engine_with_turing_loses_int8(default_build):
    """Why sm75 is split off: a portable sm89+sm75 engine runs the Q/DQ as float fake-quantisation."""
    out, _ = default_build
    mixed = build_engine(out.with_name("yolov5n.qdq.onnx"), backend="tensorrt-rtx", targets=("sm89", "sm75"))
    assert (mixed.report.conv_int8, mixed.report.conv_total) == (0, 60)
    alone = build_engine(out.with_name("yolov5n.qdq.onnx"), backend="tensorrt-rtx", targets=("sm89", "sm86"))
    assert alone.report.conv_int8 == 57


def test_second_build_reuses_the_scales(default_build):
    out, first = default_build
    again = run_build(BuildRequest(num_images=4, output=out, gpus=("rtx4090",)))
    assert again["scales_reused"] is True and first["scales_reused"] is False
    assert json.loads(out.with_name("yolov5n.engine.json").read_text())["scales_hash"] == read_sidecar(first["engines"][0]["engine"])["scales_hash"]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_float_builds_for_sm89_and_sm75_in_one_engine(precision):
    res = build_engine(default_model(), backend="tensorrt-rtx", precision=precision, targets=("sm89", "sm75"), timing_cache="unused.cache")
    want = "Float" if precision == "fp32" else "Half"
    dtypes = Counter(d for layer in res.report.layers for d in layer.input_dtypes)
    assert dtypes.most_common(1)[0][0] == want and "Int8" not in dtypes
    assert (res.report.conv_int8, res.report.conv_total, len(res.report.float_convs)) == (0, 60, 60)
    assert res.targets == ("sm89", "sm75") and len(res.engine) > 1_000_000
    assert res.options["timing_cache"].startswith("ignored")


def test_precision_and_model_must_agree(default_build):
    out, _ = default_build
    with pytest.raises(QyoloError, match="no Q/DQ nodes"):
        build_engine(default_model(), backend="tensorrt-rtx", precision="int8")
    with pytest.raises(QyoloError, match="quantized"):
        build_engine(out.with_name("yolov5n.qdq.onnx"), backend="tensorrt-rtx", precision="fp16")
    with pytest.raises(QyoloError, match="static batch of 1"):
        build_engine(default_model(), backend="tensorrt-rtx", precision="fp32", batch=(1, 2, 4))


def test_dynamic_batch_profile(tmp_path):
    import onnx

    from trt_doubles.tiny import tiny_model

    path = tmp_path / "tiny.qdq.onnx"
    onnx.save(tiny_model(), path)
    res = build_engine(path, backend="tensorrt-rtx", targets=("sm89",), batch=(1, 2, 4))
    assert res.inputs == [{"name": "x", "shape": [-1, 3, 8, 8], "dtype": "float32"}] and res.batch == (1, 2, 4)
    assert (res.report.conv_int8, res.report.float_convs) == (1, ["conv2"])
    with pytest.raises(QyoloError, match="1 <= min <= opt <= max"):
        build_engine(path, backend="tensorrt-rtx", targets=("sm89",), batch=(2, 1, 4))


def test_parser_error_is_one_clean_message(tmp_path):
    import onnx

    from trt_doubles.tiny import tiny_model

    model = tiny_model(quantized=False, batch=1)
    model.graph.node[1].op_type = "NoSuchOp"
    path = tmp_path / "bad.onnx"
    onnx.save(model, path)
    with pytest.raises(QyoloError, match=r"bad\.onnx: tensorrt-rtx cannot parse it \(.*NoSuchOp") as err:
        build_engine(path, backend="tensorrt-rtx", precision="fp32")
    assert "\n" not in str(err.value)
