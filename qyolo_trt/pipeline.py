"""`qyolo-trt build`: export -> calibrate -> quantize -> engine(s), each stage reused when it can be.

- MODEL: ``.onnx`` (FP32), ``.qdq.onnx`` (any ONNX with Q/DQ: calibration and quantization are skipped) or
  ``.pt`` / ``.yaml`` (exported first with ``qyolo_trt.export``; dynamic batch when a batch profile is asked for).
  No MODEL: the embedded yolov5n with the embedded calibration images.
- Artifacts beside the engine: ``NAME.<method>.scales.json`` and ``NAME.qdq.onnx``. An existing scales file there
  is reused when its model hash, method, image source and image count match (delete it to recalibrate).
- TensorRT-RTX, INT8: one engine for every target with INT8 kernels, and a separate one for Turing (sm75),
  which TensorRT-RTX builds in FP16 (it has no INT8 kernels there; mixing sm75 into the portable engine would
  turn every INT8 conv into float fake-quantisation; planned in ``backends/tensorrt/plan.py``). Several engines are
  named ``NAME.<targets>.engine``.
- Everything is built in memory / a temp dir first and written only when every engine built: a failed build
  leaves nothing in the output folder.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from .backends.tensorrt.adapter import resolve_backend
from .backends.tensorrt.builder import BuildResult, build_engine, has_qdq
from .backends.tensorrt.plan import EnginePlan, engine_paths, plan_engines, target_groups, targets_note
from .backends.tensorrt.sidecar import make_sidecar, sidecar_path
from .calib.scales import ScalesFile
from .defaults import (BUILD_BIAS_CORRECTION, BUILD_FLOAT_DTYPE, BUILD_RECONSTRUCT, DEFAULT_ENGINES, DEFAULT_METHOD, DEFAULT_MODE,
                       DEFAULT_PRECISION, RECONSTRUCT_ITERS,
                       default_calib, default_model)
from .errors import QyoloError
from .lazy import lazy_import
from .export import EXPORTABLE, load_source  # torch / ultralytics are imported only when exporting
from .data import list_images
from .fileio import json_text, refuse_overwrite, sha256_bytes, write_all
from .model import DetectorInfo, inspect_detector, model_hash
from .progress import progress

QUALITY_IMAGES = 4  # calibration images held out of calibration to score the QDQ model (head SQNR, FP32 agreement)


@dataclass
class BuildRequest:
    """Everything `qyolo-trt build` accepts (None = the default)."""

    model: Path | None = None
    calib: str | None = None
    num_images: int | None = None
    method: str = DEFAULT_METHOD
    mode: str = DEFAULT_MODE
    bias_correction: bool = BUILD_BIAS_CORRECTION  # fold each quantized conv's mean error on the calibration images into its bias
    reconstruct: bool = BUILD_RECONSTRUCT  # learned weight rounding + bias refit on the calibration images (torch)
    reconstruct_iters: int = RECONSTRUCT_ITERS
    float_dtype: str = BUILD_FLOAT_DTYPE  # INT8 engines: "fp16" runs the non-INT8 parts in half precision
    precision: str = DEFAULT_PRECISION
    backend: str = "auto"
    gpus: tuple[str, ...] = ()
    batch: tuple[int, int, int] = (1, 1, 1)
    timing_cache: Path | None = None
    nms: dict[str, float] | None = None  # {"score_threshold", "iou_threshold", "max_det"}
    triton_repo: Path | None = None
    model_name: str | None = None
    output: Path | None = None


def batch_profile(batch: int | None = None, min_batch: int | None = None, opt_batch: int | None = None,
                  max_batch: int | None = None) -> tuple[int, int, int]:
    """(min, opt, max) batch from a static ``batch`` or a (partial) dynamic profile; nothing given: (1, 1, 1)."""
    if batch and any((min_batch, opt_batch, max_batch)):
        raise QyoloError("give either --batch or --min-batch/--opt-batch/--max-batch, not both")
    lo = min_batch or batch or 1
    hi = max_batch or batch or max(lo, opt_batch or lo)
    return (lo, opt_batch or batch or hi, hi)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".qdq.onnx", ".onnx", *EXPORTABLE):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _load_model(req: BuildRequest) -> tuple[Path, onnx.ModelProto]:
    src = Path(req.model) if req.model else default_model()
    return src, load_source(src, dynamic_batch=req.batch != (1, 1, 1))


def split_calib(req: BuildRequest) -> tuple[list[Path], list[Path]]:
    """(calibration images, held-out images for the quality line): the last ``QUALITY_IMAGES`` of the source are
    held out when it has at least twice as many, else none (too few images to spare any)."""
    paths = list_images(req.calib or default_calib(), limit=req.num_images)
    if len(paths) < 2 * QUALITY_IMAGES:
        return paths, []
    return paths[:-QUALITY_IMAGES], paths[-QUALITY_IMAGES:]


def _scales(req: BuildRequest, fp32: onnx.ModelProto, images: list[Path], path: Path) -> tuple[ScalesFile, bool]:
    """Calibrate, or reuse the scales file at ``path`` when it was made the same way for the same model."""
    from .calib import calibrate

    key = {"build_images": str(req.calib or default_calib()), "build_num_images": req.num_images, "build_calib_images": len(images)}
    if path.is_file():
        old = ScalesFile.load(path)
        if old.model_hash == model_hash(fp32) and old.method == req.method and all(old.params.get(k) == v for k, v in key.items()):
            return old, True
    scales = calibrate(fp32, images, methods=(req.method,))[req.method]
    scales.params.update(key)
    return scales, False


def _artifact_paths(req: BuildRequest, out: Path) -> dict[str, Path]:
    return {"scales": out.with_name(f"{_stem(out)}.{req.method}.scales.json"), "qdq_onnx": out.with_name(f"{_stem(out)}.qdq.onnx")}


def _with_nms(model: onnx.ModelProto, info: DetectorInfo, nms: dict[str, float] | None) -> onnx.ModelProto:
    if not nms:
        return model
    from .deploy.nms import add_efficient_nms

    return add_efficient_nms(model, info, **nms)


def _build_all(req: BuildRequest, backend: str, plans: list[EnginePlan], info: DetectorInfo, src: Path, tmp: Path) -> list[BuildResult]:
    results = []
    for i, plan in enumerate(progress(plans, total=len(plans), desc=f"{backend} build", unit="engine")):
        onnx_path = tmp / f"build{i}.onnx"
        onnx.save(_with_nms(plan.onnx_model, info, req.nms), onnx_path)
        results.append(
            build_engine(onnx_path, backend=backend, precision=plan.precision, targets=plan.targets, batch=req.batch,
                         timing_cache=req.timing_cache, source=f"{src} ({plan.precision}, {', '.join(plan.targets)})")
        )
    return results


def _check_triton(req: BuildRequest, sidecars: list[dict[str, Any]], plans: list[EnginePlan]) -> None:
    if req.triton_repo is None:
        return
    from .deploy.triton import triton_config

    for sidecar, plan in zip(sidecars, plans):  # refuse before anything is written
        triton_config(sidecar, req.model_name or plan.engine_path.stem, source=str(plan.engine_path))


def _check(req: BuildRequest, src: Path, info: DetectorInfo, backend: str, quantized: bool) -> None:
    """Refuse impossible requests before any calibration work."""
    if req.nms and backend == "tensorrt-rtx":
        raise QyoloError("--nms needs TensorRT's EfficientNMS_TRT plugin, which TensorRT-RTX does not ship: build it with --backend tensorrt")
    if not info.dynamic_batch and len(set(req.batch) | {info.input_shape[0]}) > 1:
        raise QyoloError(f"{src} has a static batch of {info.input_shape[0]}; re-export it with a dynamic batch to build batch "
                         + "/".join(map(str, req.batch)))
    if req.triton_repo is not None and backend == "tensorrt-rtx":
        raise QyoloError("--triton-repo: Triton's tensorrt_plan backend cannot load TensorRT-RTX engines; build them with --backend tensorrt")
    if req.reconstruct and req.precision == "int8" and not quantized:
        lazy_import("torch", "export", "torch (needed by --reconstruct)")
    if quantized and req.precision != "int8":
        raise QyoloError(f"{src} is already quantized (Q/DQ): build it with --precision int8, or give the FP32 model")


def _quantize(req: BuildRequest, fp32: onnx.ModelProto, images: list[Path], out: Path) -> tuple[onnx.ModelProto, dict[str, tuple[Path, bytes]], bool]:
    """Calibrate (or reuse the scales) and rewrite to Q/DQ; returns the QDQ model and the artifacts to write."""
    from .defaults import BIAS_IMAGES
    from .qdq.config import QuantizeConfig
    from .qdq.pipeline import run

    paths = _artifact_paths(req, out)
    scales, reused = _scales(req, fp32, images, paths["scales"])
    config = QuantizeConfig(mode=req.mode, bias_correction=req.bias_correction, bias_images=images,
                            bias_num_images=min(len(images), BIAS_IMAGES), reconstruct=req.reconstruct, reconstruct_images=images,
                            reconstruct_num_images=len(images), reconstruct_iters=req.reconstruct_iters, float_dtype=req.float_dtype)
    qdq = run(fp32, scales, config).model
    scales_bytes = json_text(scales.to_dict()).encode()
    artifacts = {"scales": (paths["scales"], scales_bytes), "qdq_onnx": (paths["qdq_onnx"], qdq.SerializeToString())}
    return qdq, artifacts, reused


def run_build(req: BuildRequest) -> dict[str, Any]:
    """Run the pipeline; returns a summary (engines with their reports, artifacts, reused stages)."""
    src, model = _load_model(req)
    info = inspect_detector(model, source=str(src))
    backend = resolve_backend(req.backend)
    quantized = has_qdq(model)
    _check(req, src, info, backend, quantized)
    groups = target_groups(req.gpus, backend, req.precision)
    out = Path(req.output) if req.output else DEFAULT_ENGINES / f"{_stem(src)}.engine"
    engines = engine_paths(out, groups, _stem(out))
    artifacts_out = list(_artifact_paths(req, out).values()) if req.precision == "int8" and not quantized else []
    refuse_overwrite([*engines, *map(sidecar_path, engines), *artifacts_out], [src, req.timing_cache])
    fp32, qdq, artifacts, reused, quality = (None, model, {}, False, None) if quantized else (model, None, {}, False, None)
    if req.precision == "int8" and not quantized:
        calib, held_out = split_calib(req)
        qdq, artifacts, reused = _quantize(req, model, calib, out)
        quality = _quality(qdq, model, held_out)
    plans = plan_engines(groups, engines, backend, req.precision, fp32, qdq)
    with tempfile.TemporaryDirectory(prefix="qyolo-build-") as tmp:
        results = _build_all(req, backend, plans, info, src, Path(tmp))
    calibrated = "scales" in artifacts
    common = {
        "layout": "nms" if req.nms else info.layout,
        "model_hash": model_hash(model),
        "scales_hash": sha256_bytes(artifacts["scales"][1]) if calibrated else None,
    }
    options = {"model": str(src), "method": req.method if calibrated else None, "mode": req.mode if calibrated else None,
               "bias_correction": req.bias_correction if calibrated else None,
               "reconstruct": req.reconstruct if calibrated else None, "float_dtype": req.float_dtype if calibrated else None,
               "precision_requested": req.precision, "nms": req.nms}
    sidecars = [make_sidecar(r, **common, options={**options, "warnings": p.warnings}) for r, p in zip(results, plans)]
    _check_triton(req, sidecars, plans)
    _write_all(artifacts, results, sidecars, plans)
    triton = [str(_triton(req, p, s)) for p, s in zip(plans, sidecars)] if req.triton_repo else []
    return {
        "model": str(src),
        "backend": backend,
        "engines": [_engine_summary(p, s) for p, s in zip(plans, sidecars)],
        "artifacts": {k: str(p) for k, (p, _) in artifacts.items()},
        "scales_reused": reused,
        "triton": triton,
        "targets_note": targets_note(req.gpus, backend, groups),
        "quality": quality,
        "written": [str(p) for p in _written(artifacts, plans)] + triton,
    }


def _quality(qdq: onnx.ModelProto, fp32: onnx.ModelProto, images: list[Path]) -> dict[str, Any] | None:
    """Head SQNR and FP32 agreement of the QDQ model on the held-out calibration images (None without any)."""
    if not images:
        return None
    from .eval.evaluate import quality

    return quality(qdq, fp32, images)


def _written(artifacts: dict[str, tuple[Path, bytes]], plans: list[EnginePlan]) -> list[Path]:
    return [p for p, _ in artifacts.values()] + [q for p in plans for q in (p.engine_path, sidecar_path(p.engine_path))]


def _write_all(artifacts: dict[str, tuple[Path, bytes]], results: list[BuildResult], sidecars: list[dict[str, Any]], plans: list[EnginePlan]) -> None:
    """Write every artifact to a temp file first; rename them all only when all are written."""
    files = [*artifacts.values()]
    for r, s, p in zip(results, sidecars, plans):
        files += [(p.engine_path, r.engine), (sidecar_path(p.engine_path), json_text(s).encode())]
    write_all(files)


def _triton(req: BuildRequest, plan: EnginePlan, sidecar: dict[str, Any]) -> Path:
    from .deploy.triton import write_triton_repo

    return write_triton_repo(plan.engine_path, sidecar, req.triton_repo, req.model_name)


def _engine_summary(plan: EnginePlan, sidecar: dict[str, Any]) -> dict[str, Any]:
    rep = sidecar["report"]
    return {
        "engine": str(plan.engine_path),
        "sidecar": str(sidecar_path(plan.engine_path)),
        "targets": list(plan.targets),
        "precision": plan.precision,
        "conv_int8": rep["conv_int8"],
        "conv_total": rep["conv_total"],
        "float_convs": rep["float_convs"],
        "layers": rep["num_layers"],
        "layers_by_type": rep["layers_by_type"],
        "output_dtypes": rep.get("output_dtypes", {}),
        "warnings": plan.warnings,
    }
