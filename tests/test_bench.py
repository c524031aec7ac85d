"""`qyolo_trt.bench` and `qyolo-trt bench`: interleaving, statistics on a fake runner with known latencies, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, assert_clean_error, run_cli

from qyolo_trt.backends import Runner
from qyolo_trt.bench import (
    Variant,
    make_input,
    plan,
    run_bench,
    schedule,
    summarize,
    time_interleaved,
)
from qyolo_trt.defaults import default_model
from qyolo_trt.errors import QyoloError

MODEL = default_model()


class FakeClock:
    """A clock that only moves when a fake runner 'computes'."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeRunner(Runner):
    """Takes ``latency`` seconds of fake time per inference; records every call in a shared log."""

    name = "fake"

    def __init__(self, artifact: Path, clock: FakeClock, latency: float, log: list[str], **options: object) -> None:
        super().__init__(artifact, **options)
        self.clock, self.latency, self.log, self.shapes = clock, latency, log, []

    def _activate_impl(self) -> None:
        self.log.append(f"activate {self.artifact.name}")

    def _deactivate_impl(self) -> None:
        self.log.append(f"deactivate {self.artifact.name}")

    @property
    def input_name(self) -> str:
        return "images"

    @property
    def output_names(self) -> list[str]:
        return ["out"]

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.clock.now += self.latency
        self.log.append(self.artifact.name)
        self.shapes.append(feeds["images"].shape)
        return {"out": np.zeros(1)}


def test_runner_checks_its_state_and_inputs() -> None:
    log: list[str] = []
    runner = FakeRunner(Path("a.onnx"), FakeClock(), 0.0, log)
    with pytest.raises(QyoloError, match="not active"):
        runner.infer({"images": np.zeros(1)})
    with runner:
        with pytest.raises(QyoloError, match="already active"):
            runner.activate()
        with pytest.raises(QyoloError, match="missing input 'images'"):
            runner.infer({"x": np.zeros(1)})
        runner.infer({"images": np.zeros(1)})
    runner.deactivate()  # a second release is a no-op
    assert log == ["activate a.onnx", "a.onnx", "deactivate a.onnx"]


def test_schedule_is_round_robin_with_rotating_start() -> None:
    assert schedule(3, 3) == [0, 1, 2, 1, 2, 0, 2, 0, 1]
    rounds = np.array(schedule(4, 40)).reshape(40, 4)
    for slot in rounds.T:  # every variant takes every slot of a round equally often
        assert np.bincount(slot).tolist() == [10] * 4


def test_time_interleaved_measures_each_call() -> None:
    clock, calls_log = FakeClock(), []

    def call(i: int, dt: float):
        def run() -> None:
            clock.now += dt
            calls_log.append(i)

        return run

    lat = time_interleaved([call(0, 0.010), call(1, 0.004)], warmup=2, iters=5, clock=clock)
    assert calls_log == schedule(2, 2) + schedule(2, 5)
    np.testing.assert_allclose(lat, [[0.010] * 5, [0.004] * 5])


def test_summarize_known_statistics() -> None:
    base = np.arange(1, 101) / 1e3  # 1..100 ms
    stats = summarize(np.stack([base, base / 4]), batch=2)
    assert stats[0]["p50_ms"] == pytest.approx(50.5)
    assert stats[0]["p90_ms"] == pytest.approx(90.1)
    assert stats[0]["p99_ms"] == pytest.approx(99.01)
    assert stats[0]["throughput"] == pytest.approx(2 * 1000 / 50.5)
    assert stats[1]["p50_ms"] == pytest.approx(50.5 / 4)
    assert [s["ratio"] for s in stats] == pytest.approx([1.0, 4.0])


def test_run_bench_on_fake_runners_gives_known_latencies_and_ratios() -> None:
    clock, log, made = FakeClock(), [], {}
    latencies = {"a.onnx": 0.030, "b.onnx": 0.010, "c.onnx": 0.015}

    def factory(backend: str, artifact: Path, **options: object) -> FakeRunner:
        made[artifact.name] = FakeRunner(artifact, clock, latencies[artifact.name], log, **options)
        return made[artifact.name]

    variants = [Variant(Path(name), "ort", {"threads": 1}) for name in latencies]
    shape = lambda artifact, backend: ["batch", 3, 32, 48]  # noqa: E731 - a dynamic-batch model
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("qyolo_trt.bench.input_shape", shape)
        result = run_bench(variants, batch=3, warmup=1, iters=7, factory=factory, clock=clock)
    rows = result["rows"]
    assert [r["label"] for r in rows] == ["a.onnx", "b.onnx", "c.onnx"]
    assert [r["p50_ms"] for r in rows] == pytest.approx([30.0, 10.0, 15.0])
    assert [r["ratio"] for r in rows] == pytest.approx([1.0, 3.0, 2.0])
    assert result["baselines"] == ["a.onnx"] and rows[2]["ratios"] == pytest.approx({"a.onnx": 2.0})
    assert rows[1]["throughput"] == pytest.approx(300.0)
    assert rows[0]["runner"] == {"backend": "fake", "artifact": "a.onnx", "threads": 1}
    timed = [e for e in log if not e.startswith(("activate", "deactivate"))]
    assert timed == [["a.onnx", "b.onnx", "c.onnx"][i] for i in schedule(3, 1) + schedule(3, 7)]
    assert log[-3:] == ["deactivate c.onnx", "deactivate b.onnx", "deactivate a.onnx"]
    assert {s for r in made.values() for s in r.shapes} == {(3, 3, 32, 48)}


def test_plan_openvino_runs_the_fp32_baseline_both_ways() -> None:
    auto = plan(["fp32.onnx", "int8.onnx"], "openvino", threads=2)
    assert [(v.artifact.name, v.options["precision"]) for v in auto] == [
        ("fp32.onnx", "f32"),
        ("fp32.onnx", "default"),
        ("int8.onnx", "default"),
    ]
    assert [v.label for v in auto][:2] == ["fp32.onnx [f32]", "fp32.onnx [default]"]
    assert len(plan(["a.onnx", "b.onnx"], "openvino", ov_precision="both")) == 4
    assert {v.options["precision"] for v in plan(["a", "b"], "openvino", ov_precision="f32")} == {"f32"}
    assert all(v.options["share_outputs"] for v in auto)  # timed without copying outputs, like benchmark_app
    assert [v.options for v in plan(["a", "b"], "ort", threads=1)] == [{"threads": 1}] * 2


def test_make_input_checks_the_batch() -> None:
    assert make_input(["N", 3, 8, 8], batch=4).shape == (4, 3, 8, 8)
    x = make_input([1, 3, 8, 8], batch=1)
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    with pytest.raises(QyoloError, match="static batch of 1"):
        make_input([1, 3, 8, 8], batch=2)


def test_cli_json_real_ort_run() -> None:
    proc = run_cli("bench", MODEL, MODEL, "--backend", "ort", "--iters", "3", "--warmup", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["iters"], result["warmup"], result["batch"]) == (3, 1, 1)
    assert len(result["rows"]) == 2
    for row in result["rows"]:
        assert row["backend"] == "ort" and row["runner"]["backend"] == "ort"
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput"] > 0
    assert result["rows"][0]["ratio"] == 1.0
    assert result["rows"][1]["ratio"] == pytest.approx(result["rows"][0]["p50_ms"] / result["rows"][1]["p50_ms"])
    assert result["baselines"] == ["yolov5n.onnx", "yolov5n.onnx #2"]  # the same artifact twice: both are baselines
    assert result["rows"][0]["ratios"]["yolov5n.onnx #2"] == pytest.approx(1 / result["rows"][1]["ratio"])


def test_cli_text_real_openvino_run() -> None:
    pytest.importorskip("openvino")
    proc = run_cli("bench", MODEL, "--backend", "openvino", "--iters", "2", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "x vs yolov5n.onnx [f32]" in lines[0] and "x vs yolov5n.onnx [default]" in lines[0]
    assert "yolov5n.onnx [f32]" in lines[2] and "| 0/60" in lines[2] and "| 1.00" in lines[2]
    assert "yolov5n.onnx [default]" in lines[3] and lines[3].rstrip(" |").endswith("1.00")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["missing.onnx"], ["missing.onnx", "no such file"]),
        ([str(REPO / "pyproject.toml"), "--backend", "openvino"], ["not a readable onnx"]),
        ([str(MODEL), "--batch", "2"], ["static batch of 1"]),
        ([str(MODEL), "--iters", "0"], ["--iters"]),
        ([str(MODEL), "--backend", "trt"], []),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], words: list[str]) -> None:
    assert_clean_error(run_cli("bench", *args), *words)


def test_plan_without_backend_runs_each_artifact_on_its_own_runtime():
    """An engine beside its ONNX in one interleaved run: trt for the engine, ort for the ONNX."""
    assert [(v.artifact.name, v.backend) for v in plan(["m.onnx", "m.engine"], None)] == [("m.onnx", "ort"), ("m.engine", "trt")]
