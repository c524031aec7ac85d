"""TensorRT 10 and 11 build paths through the API doubles (tests/trt_doubles): flags vs strong typing, profiles,
timing cache, serialization, targets; and that TensorRT-10-only API fails under the 11 double."""

from __future__ import annotations

import json
from collections import Counter

import onnx
import pytest

from qyolo_trt.backends.tensorrt.adapter import TrtApi, load_api, resolve_backend
from qyolo_trt.backends.tensorrt.builder import build_engine
from qyolo_trt.errors import DependencyError, QyoloError
from trt_doubles import install_doubles
from trt_doubles.tiny import tiny_model


@pytest.fixture
def tiny(tmp_path):
    def save(quantized: bool = True, batch: int | str = "N"):
        path = tmp_path / f"tiny_{quantized}_{batch}.onnx"
        onnx.save(tiny_model(quantized, batch), path)
        return path

    return save


@pytest.mark.parametrize("major, flags", [(10, ["FP16", "INT8"]), (11, [])])  # TRT 10: what is not INT8 may run FP16
def test_int8_build_precision_flags_and_report(monkeypatch, tiny, major, flags):
    trt, _ = install_doubles(monkeypatch, major)
    res = build_engine(tiny(), backend="tensorrt", precision="int8", targets=("sm90",), batch=(1, 2, 4))
    build = trt.stats["builds"][-1]
    assert build["flags"] == flags and build["network_flags"] == 0
    assert build["profile"] == {"x": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}
    assert res.options["flavor"] == f"trt{major}" and res.options["strongly_typed"] is (major == 11)
    assert (res.report.conv_int8, res.report.conv_total, res.report.float_convs) == (1, 2, ["conv2"])
    assert res.report.source == "engine-inspector" and res.gpu == "NVIDIA H100 80GB HBM3"
    assert res.inputs == [{"name": "x", "shape": [-1, 3, 8, 8], "dtype": "float32"}]
    assert json.loads(res.engine)["version"] == trt.__version__  # serialized plan


def test_trt11_double_has_no_trt10_only_api(monkeypatch, tiny):
    trt, _ = install_doubles(monkeypatch, 11)
    config = trt.Builder(trt.Logger()).create_builder_config()
    with pytest.raises(AttributeError):
        trt.BuilderFlag.INT8  # noqa: B018
    with pytest.raises(AttributeError):
        config.int8_calibrator = object()
    with pytest.raises(AttributeError):
        trt.IInt8EntropyCalibrator2  # noqa: B018
    with pytest.raises(AttributeError):
        trt.ITensor("x", (1,), trt.DataType.FLOAT).set_dynamic_range(-1, 1)
    wrong = TrtApi(trt, "tensorrt", "trt10", trt.__version__)  # the TRT 10 code path on TRT 11 must break
    with pytest.raises(AttributeError):
        wrong.set_precision(config, "int8")


def test_trt10_qdq_network_needs_the_int8_flag(monkeypatch, tiny):
    trt, _ = install_doubles(monkeypatch, 10)
    monkeypatch.setattr(TrtApi, "set_precision", lambda self, config, precision: None)
    with pytest.raises(QyoloError, match="int8 is not configured"):
        build_engine(tiny(), backend="tensorrt", precision="int8", targets=("sm90",), batch=(1, 1, 1))


@pytest.mark.parametrize("major, flags", [(10, ["FP16"]), (11, [])])
def test_fp16_by_flag_on_10_by_graph_on_11(monkeypatch, tiny, major, flags):
    trt, _ = install_doubles(monkeypatch, major)
    res = build_engine(tiny(quantized=False, batch=1), backend="tensorrt", precision="fp16", targets=("sm90",))
    assert trt.stats["builds"][-1]["flags"] == flags
    conv = next(layer for layer in res.report.layers if layer.name == "conv2")
    assert conv.input_dtypes == ("Half",)
    assert res.inputs[0]["dtype"] == "float32"  # I/O stay float32 when the graph is converted


def test_dynamic_batch_needs_a_profile_and_static_batch_must_match(monkeypatch, tiny):
    trt, _ = install_doubles(monkeypatch, 10)
    with pytest.raises(QyoloError, match="static batch of 1"):
        build_engine(tiny(quantized=False, batch=1), backend="tensorrt", precision="fp32", targets=("sm90",), batch=(1, 2, 2))
    with pytest.raises(QyoloError, match="min <= opt <= max"):
        build_engine(tiny(quantized=False), backend="tensorrt", precision="fp32", targets=("sm90",), batch=(4, 2, 8))
    res = build_engine(tiny(quantized=False), backend="tensorrt", precision="fp32", targets=("sm90",), batch=(2, 2, 2))
    assert trt.stats["builds"][-1]["profile"]["x"][0] == (2, 3, 8, 8) and res.batch == (2, 2, 2)


@pytest.mark.parametrize("major", [10, 11])
def test_timing_cache_is_written_then_loaded(monkeypatch, tiny, tmp_path, major):
    trt, _ = install_doubles(monkeypatch, major)
    cache = tmp_path / "timing.cache"
    build_engine(tiny(), backend="tensorrt", targets=("sm90",), timing_cache=cache)
    saved = set(json.loads(cache.read_bytes()))
    assert "CaskConvolution:conv1" in saved and trt.stats["builds"][0]["cache_loaded"] == set()
    res = build_engine(tiny(), backend="tensorrt", targets=("sm90",), timing_cache=cache)
    assert trt.stats["builds"][1]["cache_loaded"] == saved and res.options["timing_cache"] == str(cache)


def test_standard_tensorrt_builds_only_for_the_local_gpu(monkeypatch, tiny):
    install_doubles(monkeypatch, 10)
    with pytest.raises(QyoloError, match="pass --gpu sm90"):
        build_engine(tiny(), backend="tensorrt", targets=("sm89",))


def test_no_gpu_fails_before_any_tensorrt_object(monkeypatch, tiny):
    """An old driver under cuda-python 13 (``(cudaErrorInsufficientDriver, None)``) names the fix, not just "no GPU"."""
    trt, cudart = install_doubles(monkeypatch, 10, devices=())
    assert cudart.cudaGetDeviceCount() == (cudart.cudaError_t.cudaErrorInsufficientDriver, None)  # cuda-python's failure shape
    with pytest.raises(DependencyError, match=r"no CUDA GPU available .*cudaErrorInsufficientDriver.*driver >= 580.*'cuda-python>=12,<13'"):
        build_engine(tiny(), backend="tensorrt", targets=("sm90",))
    assert trt.stats == {"builders": 0, "runtimes": 0, "builds": [], "plugins": False}


def test_cuda_python_is_pinned_below_13():
    """cuda-python 13 needs a driver >= 580: the trt extra (and dev, which runs the real no-driver test) stay on 12."""
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("trt", "dev"):
        assert [d for d in extras[extra] if d.startswith("cuda-python")] == ["cuda-python>=12,<13"], extra


def test_auto_picks_tensorrt_only_with_a_gpu(monkeypatch):
    install_doubles(monkeypatch, 11)
    assert resolve_backend("auto") == "tensorrt" and load_api("tensorrt").flavor == "trt11"
    install_doubles(monkeypatch, 11, devices=())
    pytest.importorskip("tensorrt_rtx")
    assert resolve_backend("auto") == "tensorrt-rtx" and load_api("tensorrt-rtx").flavor == "rtx"


def test_tensorrt_8_is_refused(monkeypatch):
    install_doubles(monkeypatch, 10, version="8.6.1")
    with pytest.raises(DependencyError, match="TensorRT 8.6.1 is not supported"):
        load_api("tensorrt")


def test_report_counts_layers_by_type(monkeypatch, tiny):
    install_doubles(monkeypatch, 11)
    res = build_engine(tiny(), backend="tensorrt", targets=("sm90",))
    assert res.report.layers_by_type == dict(Counter(layer.type for layer in res.report.layers)) == {"CaskConvolution": 2, "PointWiseV2": 1}


def test_parser_gets_the_model_file_path(monkeypatch, tiny, tmp_path):
    """``OnnxParser.parse(bytes, path)``: ``path`` is the model's file (external data is resolved beside it), not its folder."""
    install_doubles(monkeypatch, 10)
    model = tiny()
    assert build_engine(model, backend="tensorrt", targets=("sm90",)).engine  # the double refuses a folder


def test_plugin_logger_outlives_the_build(monkeypatch, tiny):
    """The plugin registry keeps a raw pointer to the logger it got: that logger must not be a build's local one."""
    import gc

    trt, _ = install_doubles(monkeypatch, 10)
    build_engine(tiny(), backend="tensorrt", targets=("sm90",))
    gc.collect()
    assert trt.stats["plugin_logger"]() is not None


@pytest.mark.parametrize("major", [10, 11])
def test_corrupt_timing_cache_is_one_line(monkeypatch, tiny, tmp_path, major):
    """``create_timing_cache`` returns None for bytes that are not a cache: a clear error, not a TypeError."""
    install_doubles(monkeypatch, major)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"\x00garbage")
    with pytest.raises(QyoloError, match="timing cache is not readable"):
        build_engine(tiny(), backend="tensorrt", targets=("sm90",), timing_cache=cache)
    assert cache.read_bytes() == b"\x00garbage"
