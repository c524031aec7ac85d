"""``build_engine``: ONNX (FP32 or Q/DQ) -> serialized TensorRT / TensorRT-RTX engine + its layer report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ...defaults import ENGINE_PRECISIONS
from ...errors import QyoloError
from ...fileio import write_bytes_atomic
from ...model import load_onnx
from .adapter import TrtApi, load_api, resolve_backend
from .report import QDQ_OPS, EngineReport, make_report
from .runtime import require_gpu



@dataclass
class BuildResult:
    """A built engine (bytes, not yet written) and everything the sidecar records about it."""

    engine: bytes
    backend: str  # "tensorrt" | "tensorrt-rtx"
    version: str
    report: EngineReport
    precision: str
    targets: tuple[str, ...]
    gpu: str | None  # the local GPU for standard TensorRT; None for ahead-of-time RTX builds
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    batch: tuple[int, int, int]
    options: dict[str, Any] = field(default_factory=dict)


def has_qdq(model: onnx.ModelProto) -> bool:
    """True for an explicitly quantized (Q/DQ) model."""
    return any(n.op_type in QDQ_OPS for n in model.graph.node)


def _fp16_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 for strongly typed builders: convert the graph, keep float32 inputs/outputs."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)


def _prepare(model: onnx.ModelProto, api: TrtApi, precision: str, source: str) -> onnx.ModelProto:
    if precision not in ENGINE_PRECISIONS:
        raise QyoloError(f"unknown precision {precision!r}; choose from {', '.join(ENGINE_PRECISIONS)}")
    quantized = has_qdq(model)
    if precision == "int8" and not quantized:
        raise QyoloError(
            f"{source} has no Q/DQ nodes: INT8 needs an explicitly quantized model "
            "(`qyolo-trt build` calibrates and quantizes an FP32 model for you)"
        )
    if precision != "int8" and quantized:
        raise QyoloError(f"{source} is quantized (Q/DQ): build it with --precision int8, or give the FP32 model")
    return _fp16_graph(model) if precision == "fp16" and api.strongly_typed else model


def _io(api: TrtApi, network: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def desc(t: Any) -> dict[str, Any]:
        return {"name": t.name, "shape": [int(d) for d in t.shape], "dtype": np.dtype(api.trt.nptype(t.dtype)).name}

    inputs = [desc(network.get_input(i)) for i in range(network.num_inputs)]
    return inputs, [desc(network.get_output(i)) for i in range(network.num_outputs)]


def _add_profile(builder: Any, network: Any, config: Any, batch: tuple[int, int, int], source: str) -> None:
    """One optimization profile over the batch dimension; a static batch must equal the request."""
    lo, opt, hi = batch
    if not 1 <= lo <= opt <= hi:
        raise QyoloError(f"batch sizes must satisfy 1 <= min <= opt <= max, got {lo}/{opt}/{hi}")
    profile = None
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = [int(d) for d in t.shape]
        if any(d < 0 for d in shape[1:]):
            raise QyoloError(f"{source}: input {t.name} has dynamic dimensions {shape}; only the batch may be dynamic")
        if shape[0] >= 0:
            if (lo, opt, hi) != (shape[0],) * 3:
                raise QyoloError(
                    f"{source} has a static batch of {shape[0]}; re-export it with a dynamic batch to build batch {lo}/{opt}/{hi}"
                )
            continue
        profile = profile or builder.create_optimization_profile()
        profile.set_shape(t.name, (lo, *shape[1:]), (opt, *shape[1:]), (hi, *shape[1:]))
    if profile is not None:
        config.add_optimization_profile(profile)


def _parse(api: TrtApi, builder: Any, logger: Any, model: onnx.ModelProto, path: Path, source: str) -> Any:
    """A network from the ONNX parser (external data resolved beside ``path``); parser errors in one line."""
    network = api.create_network(builder)
    parser = api.trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString(), str(path.resolve())):  # the model's file path: external data lies beside it
        errors = [str(parser.get_error(i)).strip().splitlines()[0] for i in range(parser.num_errors)]
        raise QyoloError(f"{source}: {api.backend} cannot parse it ({(errors or logger.errors or ['unknown error'])[0]})")
    return network


def build_engine(
    onnx_path: str | os.PathLike,
    *,
    backend: str = "auto",
    precision: str = "int8",
    targets: tuple[str, ...] = ("sm89",),
    batch: tuple[int, int, int] = (1, 1, 1),
    timing_cache: str | os.PathLike | None = None,
    source: str | None = None,
) -> BuildResult:
    """Build one engine for ``targets`` (compute capabilities, e.g. ``("sm89", "sm86")``).

    ``int8`` needs a Q/DQ model; ``fp16``/``fp32`` an FP32 one. Standard TensorRT builds for the local
    GPU only (``targets`` must name it); TensorRT-RTX builds for any supported targets without a GPU.
    A timing cache file is read if present and written back (atomically) after the build.
    ``source`` names the model in messages (default: ``onnx_path``).
    """
    api = load_api(resolve_backend(backend))
    gpu = require_gpu() if api.needs_gpu_to_build else None
    source = source or str(onnx_path)
    model = _prepare(load_onnx(onnx_path), api, precision, source)
    op_types = {n.name: n.op_type for n in model.graph.node}

    logger = api.make_logger()
    builder = api.trt.Builder(logger)
    network = _parse(api, builder, logger, model, Path(onnx_path), source)
    config = builder.create_builder_config()
    config.profiling_verbosity = api.trt.ProfilingVerbosity.DETAILED
    api.set_precision(config, precision)
    api.set_targets(config, tuple(targets), gpu)
    _add_profile(builder, network, config, batch, source)
    cache_path = Path(timing_cache) if timing_cache else None
    cache_used = cache_path is not None and api.set_timing_cache(config, cache_path.read_bytes() if cache_path.is_file() else b"")

    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise QyoloError(f"{api.backend} could not build {source} ({(logger.errors or ['no error message'])[0]})")
    seconds = time.perf_counter() - start
    engine = bytes(plan)
    if cache_used:
        write_bytes_atomic(cache_path, api.timing_cache_bytes(config))
    layers, report_source = api.layers(engine, logger)
    inputs, outputs = _io(api, network)
    return BuildResult(
        engine=engine,
        backend=api.backend,
        version=api.version,
        report=make_report(layers, op_types, report_source),
        precision=precision,
        targets=tuple(targets),
        gpu=gpu.name if gpu else None,
        inputs=inputs,
        outputs=outputs,
        batch=tuple(batch),
        options={
            "flavor": api.flavor,
            "strongly_typed": api.strongly_typed,
            "timing_cache": str(cache_path) if cache_used else ("ignored: no-op in TensorRT-RTX" if cache_path else None),
            "build_seconds": round(seconds, 3),
        },
    )
