"""Read OpenVINO's runtime (executed) graph: which layers run in which precision."""

from __future__ import annotations

from collections import Counter
from typing import Any

FIELDS = ("layerType", "runtimePrecision", "outputPrecisions", "originalLayersNames", "execTimeMcs")


def runtime_layers(runtime_model: Any) -> list[dict[str, str]]:
    """One dict per executed node of ``compiled_model.get_runtime_model()``: its name and the
    rt_info ``FIELDS`` (layer type, runtime / output precision, fused original layer names)."""
    layers = []
    for op in runtime_model.get_ordered_ops():
        info = op.get_rt_info()
        layers.append({"name": op.get_friendly_name(), **{k: info[k].astype(str) for k in FIELDS if k in info}})
    return layers


def conv_precisions(runtime_model: Any) -> dict[str, int]:
    """How many executed convolutions run in each precision, e.g. ``{"i8": 0, "u8": 57, "bf16": 3}``."""
    counts = Counter(layer["runtimePrecision"] for layer in runtime_layers(runtime_model) if layer.get("layerType") == "Convolution")
    return dict(sorted(counts.items()))


def onnx_node_precisions(runtime_model: Any, layer_type: str = "Convolution") -> dict[str, str]:
    """Original (ONNX) node name -> runtime precision of the executed ``layer_type`` it was fused into
    (OpenVINO's "/WithoutBiases" suffix on convolutions removed)."""
    return {
        original.removesuffix("/WithoutBiases"): layer["runtimePrecision"]
        for layer in runtime_layers(runtime_model)
        if layer.get("layerType") == layer_type
        for original in layer.get("originalLayersNames", "").split(",")
        if original
    }


def layer_times(request: Any) -> dict[str, float]:
    """Milliseconds of the last inference of ``request`` (compiled with ``PERF_COUNT``), summed by
    "layer type / kernel" (e.g. "Convolution / brgconv_avx512_amx_1x1_I8")."""
    times: Counter[str] = Counter()
    for p in request.get_profiling_info():
        if p.status.name == "EXECUTED":
            times[f"{p.node_type} / {p.exec_type}"] += p.real_time.total_seconds() * 1e3
    return dict(times)
