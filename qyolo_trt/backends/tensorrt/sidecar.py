"""``NAME.engine.json`` beside every engine: how it was built, for what, and the build report.

Keys: qyolo_trt_version, backend, backend_version, targets, gpu, precision, inputs, outputs, batch {min,opt,max},
layout, model_hash, scales_hash, options, report, engine_sha256. Loading an engine checks it (``check_sidecar``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ... import __version__
from ...errors import QyoloError
from ...fileio import read_json, sha256_bytes, sha256_file
from .builder import BuildResult
from .report import EngineReport
from .runtime import GpuInfo

REQUIRED = ("backend", "backend_version", "targets", "precision", "inputs", "outputs", "engine_sha256")


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """``engines/NAME.engine`` -> ``engines/NAME.engine.json``."""
    return Path(f"{os.fspath(engine_path)}.json")


def make_sidecar(
    result: BuildResult,
    *,
    layout: str | None = None,
    model_hash: str | None = None,
    scales_hash: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar dict of a built engine (``engine_sha256`` from the engine bytes)."""
    lo, opt, hi = result.batch
    return {
        "qyolo_trt_version": __version__,
        "backend": result.backend,
        "backend_version": result.version,
        "targets": list(result.targets),
        "gpu": result.gpu,
        "precision": result.precision,
        "inputs": result.inputs,
        "outputs": result.outputs,
        "batch": {"min": lo, "opt": opt, "max": hi},
        "layout": layout,
        "model_hash": model_hash,
        "scales_hash": scales_hash,
        "options": {**result.options, **(options or {})},
        "report": result.report.to_dict(),
        "engine_sha256": sha256_bytes(result.engine),
    }


def read_sidecar(engine_path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of ``engine_path``; a one-line error when it is missing or unreadable."""
    path = sidecar_path(engine_path)
    if not Path(engine_path).is_file():
        raise QyoloError(f"{engine_path}: no such engine file")
    data = read_json(path, "engine sidecar", missing=f"{engine_path}: no sidecar {path.name} (built outside qyolo-trt?); rebuild it with qyolo-trt build")
    missing = [k for k in REQUIRED if k not in data] if isinstance(data, dict) else list(REQUIRED)
    if missing:
        raise QyoloError(f"{path}: engine sidecar lacks {', '.join(missing)}; rebuild the engine with qyolo-trt build")
    return data


def rebuild_command(sidecar: dict[str, Any], engine_path: str | os.PathLike, gpu: GpuInfo) -> str:
    """The command that rebuilds this engine for ``gpu`` with the installed backend."""
    model = sidecar.get("options", {}).get("model") or "MODEL"
    return f"qyolo-trt build {model} --backend {sidecar['backend']} --precision {sidecar['precision']} --gpu {gpu.cc} -o {engine_path}"


def check_sidecar(sidecar: dict[str, Any], engine_path: str | os.PathLike, *, backend_version: str, gpu: GpuInfo, engine: bytes) -> None:
    """Refuse an engine built by another backend version, for another GPU, or whose bytes changed."""
    if sha256_bytes(engine) != sidecar["engine_sha256"]:
        raise QyoloError(f"{engine_path}: the engine does not match its sidecar (engine_sha256): rebuild it with qyolo-trt build")
    built = f"{sidecar['backend']} {sidecar['backend_version']} for {', '.join(sidecar['targets'])}" + (
        f" ({sidecar['gpu']})" if sidecar.get("gpu") else ""
    )
    here = f"{sidecar['backend']} {backend_version} and {gpu.name} ({gpu.cc})"
    wrong_gpu = gpu.cc not in sidecar["targets"] or (sidecar["backend"] == "tensorrt" and sidecar.get("gpu") not in (None, gpu.name))
    if sidecar["backend_version"] != backend_version or wrong_gpu:
        raise QyoloError(
            f"{engine_path} was built with {built}; this machine has {here}: rebuild it here with: "
            f"{rebuild_command(sidecar, engine_path, gpu)}"
        )


def describe_engine(engine_path: str | os.PathLike) -> dict[str, Any]:
    """Sidecar facts plus a check of the engine file (size, hash) -- no TensorRT or GPU needed."""
    sidecar = read_sidecar(engine_path)
    report = EngineReport.from_dict(sidecar["report"]) if sidecar.get("report") else None
    return {
        "engine": str(engine_path),
        "engine_bytes": Path(engine_path).stat().st_size,
        "engine_sha256_ok": sha256_file(engine_path) == sidecar["engine_sha256"],
        **{k: v for k, v in sidecar.items() if k != "report"},
        "report": report.to_dict() if report else None,
    }


def summary_text(info: dict[str, Any]) -> str:
    """Human text for one engine: what it targets and what the builder did with the model."""
    rep = info.get("report") or {}
    layers = ", ".join(f"{k} {v}" for k, v in rep.get("layers_by_type", {}).items())
    lines = [
        f"{info.get('engine', '')}: {info['backend']} {info['backend_version']}, {info['precision']}, "
        f"targets {', '.join(info['targets'])}" + (f" ({info['gpu']})" if info.get("gpu") else ""),
        "  inputs:  " + ", ".join(f"{t['name']} {t['shape']} {t['dtype']}" for t in info["inputs"]),
        "  outputs: " + ", ".join(f"{t['name']} {t['shape']} {t['dtype']}" for t in info["outputs"]),
    ]
    if rep:
        lines += [
            f"  layers:  {rep.get('num_layers', 0)} ({layers})",
            f"  convs with INT8 input: {rep['conv_int8']}/{rep['conv_total']}",
            f"  float convs: {', '.join(rep.get('float_convs', [])) or 'none'}",
            f"  float nodes: {len(rep.get('float_nodes', []))} (not Q/DQ)",
        ]
    return "\n".join(lines)
