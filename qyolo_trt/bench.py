"""Interleaved latency benchmark over any backend: every artifact is timed in the same rounds,
so machine noise hits all of them alike. Pure: synthetic inputs, ``time.perf_counter``, numpy statistics."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Runner, default_backend, get_runner
from .progress import progress
from .errors import QyoloError
from .lazy import lazy_import
from .model import load_detector

OV_PRECISIONS = ("auto", "both", "default", "f32")
HINTS = ("latency", "throughput")  # --hint: OpenVINO's performance hint (throughput: several infer requests per round)
RunnerFactory = Callable[..., Runner]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Variant:
    """One thing to time: an artifact on a backend, with runner options."""

    artifact: Path
    backend: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        precision = self.options.get("precision")
        return f"{self.artifact.name} [{precision}]" if precision else self.artifact.name


def plan(artifacts: Sequence[str | os.PathLike], backend: str | None, threads: int = 0, ov_precision: str = "auto",
         hint: str = HINTS[0]) -> list[Variant]:
    """The variants to time, in report order. On OpenVINO, ``ov_precision`` "auto" runs the first
    artifact (the FP32 baseline) both with f32 forced and in OpenVINO's default precision, the others
    in the default; "both" runs every artifact both ways; "default" / "f32" runs all one way. OpenVINO
    outputs are not copied (like ``benchmark_app``); ONNX Runtime returns fresh arrays without a copy anyway.
    ``hint`` "throughput" (OpenVINO only): each round runs OpenVINO's optimal number of parallel infer requests."""
    if ov_precision not in OV_PRECISIONS:
        raise QyoloError(f"unknown OpenVINO precision mode {ov_precision!r}; choose from {', '.join(OV_PRECISIONS)}")
    if hint not in HINTS:
        raise QyoloError(f"unknown performance hint {hint!r}; choose from {', '.join(HINTS)}")
    if hint != HINTS[0] and backend != "openvino":
        raise QyoloError(f"--hint {hint} is an OpenVINO performance hint: add --backend openvino")
    paths = [Path(a) for a in artifacts]
    if not paths:
        raise QyoloError("nothing to benchmark: give at least one artifact")
    if backend is None:  # each artifact on its own default runtime: an engine beside its ONNX
        return [Variant(p, default_backend(p), {"threads": threads}) for p in paths]
    if backend != "openvino":
        return [Variant(p, backend, {"threads": threads}) for p in paths]
    both = ("f32", "default")
    per_artifact = {"auto": [both] + [("default",)] * (len(paths) - 1), "both": [both] * len(paths)}.get(
        ov_precision, [(ov_precision,)] * len(paths)
    )
    options = {"threads": threads, "share_outputs": True, "hint": hint}
    return [Variant(p, backend, {"precision": prec, **options}) for p, precs in zip(paths, per_artifact) for prec in precs]


def schedule(n: int, iters: int) -> list[int]:
    """Round-robin order of ``iters`` rounds over ``n`` variants; each round starts one variant later,
    so every variant takes every slot of a round equally often (no variant always runs first)."""
    return [(r + k) % n for r in range(iters) for k in range(n)]


def time_interleaved(calls: Sequence[Callable[[], object]], warmup: int, iters: int, clock: Clock = time.perf_counter) -> np.ndarray:
    """Run ``calls`` round-robin (``warmup`` untimed rounds, then ``iters`` timed); latencies in seconds, shape (n, iters)."""
    n = len(calls)
    for i in schedule(n, warmup):
        calls[i]()
    latencies = np.empty((n, iters))
    done = np.zeros(n, dtype=int)
    for i in progress(schedule(n, iters), total=n * iters, desc="bench", unit="run"):
        start = clock()
        calls[i]()
        latencies[i, done[i]] = clock() - start
        done[i] += 1
    return latencies


def summarize(latencies: np.ndarray, batch: int | np.ndarray = 1) -> list[dict[str, float]]:
    """Per row of ``latencies`` (seconds): p50/p90/p99/mean in ms, throughput in images/s (batch / mean; ``batch`` may
    be one number per row: the images one call of that row runs), and ``ratio``: the first row's p50 over this row's
    (the speed-up against the first; > 1 is faster)."""
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99], axis=1) * 1e3
    mean = latencies.mean(axis=1) * 1e3
    throughput = batch * 1e3 / mean
    ratio = p50[0] / p50
    keys = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput", "ratio")
    return [dict(zip(keys, map(float, row))) for row in np.stack([p50, p90, p99, mean, throughput, ratio], axis=1)]


def input_shape(artifact: Path, backend: str) -> list[int | str]:
    """The image input's shape [N, 3, H, W] (N may be symbolic / -1): from the engine's sidecar for
    TensorRT, else from the ONNX graph."""
    if backend == "trt":
        sidecar = lazy_import("qyolo_trt.backends.tensorrt.sidecar", "trt", "the TensorRT backend")
        return list(sidecar.read_sidecar(artifact)["inputs"][0]["shape"])
    return list(load_detector(artifact)[1].input_shape)


def make_input(shape: Sequence[int | str], batch: int, seed: int = 0) -> np.ndarray:
    """Uniform [0, 1) float32 input of ``shape`` with its (dynamic) batch dimension set to ``batch``."""
    n = shape[0]
    if isinstance(n, int) and n > 0 and n != batch:
        raise QyoloError(f"the model has a static batch of {n}; benchmark it with --batch {n} or export it with a dynamic batch")
    dims = [batch, *shape[1:]]
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise QyoloError(f"cannot benchmark an input of shape {list(shape)}: only the batch dimension may be dynamic")
    return np.random.default_rng(seed).random(dims, dtype=np.float32)


def run_bench(
    variants: Sequence[Variant],
    batch: int = 1,
    warmup: int = 10,
    iters: int = 100,
    factory: RunnerFactory = get_runner,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    """Load every variant, time them interleaved, and return ``{"batch", "warmup", "iters", "hint", "baselines", "rows"}``;
    each row has the variant, the runner's ``describe()``, the ``summarize`` statistics and ``ratios``: its
    speed-up against each baseline (the rows of the first artifact, e.g. FP32 with f32 forced and default), by p50
    latency, or with the throughput hint (a round = several parallel requests) by images/s."""
    if warmup < 0 or iters < 1 or batch < 1:
        raise QyoloError("need --iters >= 1, --warmup >= 0 and --batch >= 1")
    inputs = [make_input(input_shape(v.artifact, v.backend), batch) for v in variants]
    with contextlib.ExitStack() as stack:
        runners = [stack.enter_context(factory(v.backend, v.artifact, **v.options)) for v in variants]
        calls = [partial(r.infer, {r.input_name: x}) for r, x in zip(runners, inputs)]
        latencies = time_interleaved(calls, warmup, iters, clock)
        described = [r.describe() for r in runners]
    images = np.array([batch * d.get("requests", 1) for d in described])
    hint = HINTS[1] if any(v.options.get("hint") == HINTS[1] for v in variants) else HINTS[0]
    labels = [v.label if [u.label for u in variants[:i]].count(v.label) == 0 else f"{v.label} #{i + 1}" for i, v in enumerate(variants)]
    rows = [
        {"label": label, "artifact": str(v.artifact), "backend": v.backend, "runner": d, **stats}
        for label, v, d, stats in zip(labels, variants, described, summarize(latencies, images))
    ]
    baselines = [r for r in rows if (r["artifact"], r["backend"]) == (rows[0]["artifact"], rows[0]["backend"])]
    for r in rows:
        speedup = (lambda b: r["throughput"] / b["throughput"]) if hint == HINTS[1] else (lambda b: b["p50_ms"] / r["p50_ms"])
        r["ratios"] = {b["label"]: speedup(b) for b in baselines}
    return {"batch": batch, "warmup": warmup, "iters": iters, "hint": hint, "baselines": [b["label"] for b in baselines], "rows": rows}
