"""``NAME.engine.json`` beside every engine: how it was built, for what, and the build report.

Keys: qyolo_trt_version, backend, backend_version, targets, gpu, precision, inputs, outputs, batch {min,opt,max},
layout, model_hash, scales_hash, options, report, engine_sha256. Loading an engine checks it (``check_sidecar``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ... import __version__
from ...defaults import ENGINE_PRECISIONS
from ...errors import QyoloError
from ...fileio import read_json, sha256_bytes
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
    if bad := _bad_field(data):
        raise QyoloError(f"{path}: engine sidecar field {bad}; rebuild the engine with qyolo-trt build")
    return data


def _is_tensor(t: Any) -> bool:
    return isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("shape"), list) and isinstance(t.get("dtype"), str)


def _bad_field(data: dict[str, Any]) -> str | None:
    """The first sidecar field of the wrong type, described; None when every field is well-formed."""
    checks = {
        "backend": lambda v: isinstance(v, str),
        "backend_version": lambda v: isinstance(v, str),
        "targets": lambda v: isinstance(v, list) and bool(v) and all(isinstance(t, str) for t in v),
        "precision": lambda v: v in ENGINE_PRECISIONS,
        "inputs": lambda v: isinstance(v, list) and bool(v) and all(map(_is_tensor, v)),
        "outputs": lambda v: isinstance(v, list) and bool(v) and all(map(_is_tensor, v)),
        "engine_sha256": lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v),
        "batch": lambda v: isinstance(v, dict) and all(isinstance(v.get(k), int) and v[k] >= 1 for k in ("min", "opt", "max")),
        "report": lambda v: v is None or isinstance(v, dict),
        "options": lambda v: isinstance(v, dict),
    }
    for key, ok in checks.items():
        if key in data and not ok(data[key]):
            return f"{key!r} is malformed ({json.dumps(data[key])[:60]})"
    return None


def verify_engine(sidecar: dict[str, Any], engine_path: str | os.PathLike) -> bytes:
    """The engine's bytes, refused when they do not match the sidecar (swapped, rebuilt, truncated or random file)."""
    plan = Path(engine_path).read_bytes()
    if sha256_bytes(plan) != sidecar["engine_sha256"]:
        raise QyoloError(f"{engine_path}: the engine does not match its sidecar (engine_sha256): rebuild it with qyolo-trt build")
    return plan


def rebuild_command(sidecar: dict[str, Any], engine_path: str | os.PathLike, gpu: GpuInfo) -> str:
    """The command that rebuilds this engine for ``gpu`` with the installed backend."""
    model = sidecar.get("options", {}).get("model") or "MODEL"
    return f"qyolo-trt build {model} --backend {sidecar['backend']} --precision {sidecar['precision']} --gpu {gpu.cc} -o {engine_path}"


def check_sidecar(sidecar: dict[str, Any], engine_path: str | os.PathLike, *, backend_version: str, gpu: GpuInfo) -> None:
    """Refuse an engine built by another backend version or for another GPU (its bytes: ``verify_engine``)."""
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
    verify_engine(sidecar, engine_path)
    report = EngineReport.from_dict(sidecar["report"]) if sidecar.get("report") else None
    return {
        "engine": str(engine_path),
        "engine_bytes": Path(engine_path).stat().st_size,
        "engine_sha256_ok": True,
        **{k: v for k, v in sidecar.items() if k != "report"},
        "report": report.to_dict() if report else None,
    }


def short_list(names: list[str], limit: int = 8) -> str:
    """``a, b, c`` for a few names; the first ``limit`` and a count for many (``--json`` lists them all)."""
    if not names:
        return "none"
    if len(names) <= limit:
        return ", ".join(names)
    return f"{len(names)}: {', '.join(names[:limit])}, ... (+{len(names) - limit} more; --json lists all)"


def traffic_text(by_dtype: dict[str, int] | None) -> str:
    """``76.70 MB per image (Float 55.88, Half 5.72, Int8 15.10)``; unknown for reports without layer shapes."""
    if by_dtype is None:
        return "unknown (no layer shapes in this report; rebuild to get them)"
    parts = ", ".join(f"{k} {v / 1e6:.2f}" for k, v in by_dtype.items())
    return f"{sum(by_dtype.values()) / 1e6:.2f} MB per image" + (f" ({parts})" if parts else "")


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
            "  layer outputs by dtype: " + (", ".join(f"{k} {v}" for k, v in rep.get("output_dtypes", {}).items()) or "-"),
            f"  activation traffic: {traffic_text(rep.get('activation_bytes_by_dtype'))}",
            f"  convs with INT8 input: {rep['conv_int8']}/{rep['conv_total']}",
            f"  float convs: {short_list(rep.get('float_convs', []))}",
            f"  float nodes: {len(rep.get('float_nodes', []))} (not Q/DQ)",
        ]
    return "\n".join(lines)
