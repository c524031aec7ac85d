"""`bench --batch N` on a dynamic-batch model and `--hint throughput` (OpenVINO: several infer requests per round)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, run_cli
from onnx import numpy_helper
from qdq_graphs import fragile_detector
from test_bench import FakeClock, FakeRunner

from qyolo_trt.bench import Variant, plan, run_bench
from qyolo_trt.errors import QyoloError


class ParallelRunner(FakeRunner):
    """A fake runner whose one call runs ``requests`` inferences (as OpenVINO's throughput hint does)."""

    def describe(self) -> dict:
        return {**super().describe(), "requests": self.options["requests"]}


def test_throughput_rows_count_every_request_and_compare_by_images_per_second() -> None:
    clock, log = FakeClock(), []
    latency = {"a.onnx": 0.040, "b.onnx": 0.030}
    requests = {"a.onnx": 2, "b.onnx": 3}

    def factory(backend: str, artifact: Path, **options: object) -> FakeRunner:
        return ParallelRunner(artifact, clock, latency[artifact.name], log, requests=requests[artifact.name])

    variants = [Variant(Path(n), "openvino", {"hint": "throughput"}) for n in latency]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("qyolo_trt.bench.input_shape", lambda artifact, backend: ["N", 3, 8, 8])
        result = run_bench(variants, batch=4, warmup=0, iters=5, factory=factory, clock=clock)
    a, b = result["rows"]
    assert result["hint"] == "throughput"
    assert a["throughput"] == pytest.approx(4 * 2 / 0.040) and b["throughput"] == pytest.approx(4 * 3 / 0.030)
    assert b["ratios"]["a.onnx"] == pytest.approx(400 / 200)  # images/s, not p50 (which would say 1.33)


def test_throughput_hint_is_openvino_only() -> None:
    assert {v.options["hint"] for v in plan(["a.onnx"], "openvino", hint="throughput")} == {"throughput"}
    with pytest.raises(QyoloError, match="--backend openvino"):
        plan(["a.onnx"], "ort", hint="throughput")


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory) -> Path:
    """A small anchor-free detector with a dynamic batch (its flattening Reshape keeps the batch: -1)."""
    model = fragile_detector()
    shape = next(i for i in model.graph.initializer if i.name == "flatten.shape")
    shape.CopyFrom(numpy_helper.from_array(np.array([-1, *numpy_helper.to_array(shape)[1:]], np.int64), shape.name))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    path = tmp_path_factory.mktemp("dyn") / "tiny_dynamic.onnx"
    onnx.save(model, path)
    return path


def test_cli_batch_on_a_dynamic_model(dynamic) -> None:
    proc = run_cli("bench", dynamic, "--backend", "ort", "--batch", "8", "--iters", "3", "--warmup", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["rows"][0]
    assert row["throughput"] == pytest.approx(8 * 1000 / row["mean_ms"])


def test_cli_throughput_on_openvino(dynamic) -> None:
    pytest.importorskip("openvino")
    proc = run_cli("bench", dynamic, "--backend", "openvino", "--ov-precision", "f32", "--hint", "throughput", "--batch", "2",
                   "--iters", "3", "--warmup", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    row = result["rows"][0]
    assert result["hint"] == "throughput" and row["runner"]["hint"] == "throughput" and row["runner"]["requests"] >= 1
    assert row["throughput"] == pytest.approx(2 * row["runner"]["requests"] * 1000 / row["mean_ms"])
    assert np.isclose(row["ratio"], 1.0)
    assert_clean_error(run_cli("bench", dynamic, "--hint", "throughput"), "--backend openvino")


def test_text_says_plainly_when_int8_is_not_faster_than_the_default_precision() -> None:
    from qyolo_trt.cli.bench import _text

    fp32 = {"execution_precision": "bf16", "conv_precisions": {"bf16": 60}}
    int8 = {"execution_precision": "bf16", "conv_precisions": {"bf16": 3, "i8": 57}}

    def row(label: str, runner: dict, x: float) -> dict:
        return {"label": label, "runner": runner, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "throughput": 1.0, "ratios": {"m [default]": x}}

    result = {"hint": "latency", "iters": 3, "baselines": ["m [default]"],
              "rows": [row("m [default]", fp32, 1.0), row("slow [default]", int8, 0.93), row("fast [default]", int8, 1.2)]}
    notes = [line for line in _text(result).splitlines() if line.startswith("note:")]
    assert notes == ["note: slow [default] (int8 + bf16) is not faster than m [default] (bf16): 0.93x; the FP32 model is the "
                     "better choice on this machine"]
    result["rows"][0]["runner"] = int8  # an INT8 baseline: nothing to say
    assert "note:" not in _text(result)
