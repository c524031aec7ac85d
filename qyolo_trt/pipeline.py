"""`qyolo-trt build`: export -> calibrate -> quantize -> engine(s), each stage reused when it can be.

- MODEL: ``.onnx`` (FP32), ``.qdq.onnx`` (any ONNX with Q/DQ: calibration and quantization are skipped) or
  ``.pt`` / ``.yaml`` (exported first with ``qyolo_trt.export``; dynamic batch when a batch profile is asked for).
  No MODEL: the embedded yolov5n with the embedded calibration images.
- Artifacts beside the engine: ``NAME.<method>.scales.json`` and ``NAME.qdq.onnx``. An existing scales file there
  is reused when its model hash, method, image source and image count match (delete it to recalibrate).
- TensorRT-RTX, INT8: one engine for every target with INT8 kernels, and a separate one for Turing (sm75),
  which TensorRT-RTX builds in FP16 (it has no INT8 kernels there; mixing sm75 into the portable engine would
  turn every INT8 conv into float fake-quantisation). Several engines are named ``NAME.<targets>.engine``.
- Everything is built in memory / a temp dir first and written only when every engine built: a failed build
  leaves nothing in the output folder.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from .backends.tensorrt.adapter import resolve_backend
from .backends.tensorrt.builder import BuildResult, build_engine, has_qdq
from .backends.tensorrt.gpus import RTX_NO_INT8, parse_targets, rtx_groups
from .backends.tensorrt.runtime import require_gpu
from .backends.tensorrt.sidecar import make_sidecar, sidecar_path
from .calib.scales import ScalesFile
from .defaults import DEFAULT_ENGINES, default_calib, default_model
from .errors import QyoloError
from .export import EXPORTABLE, export  # torch / ultralytics are imported only when exporting
from .data import list_images
from .fileio import json_text, refuse_overwrite, sha256_bytes, write_all
from .model import DetectorInfo, inspect_detector, load_onnx, model_hash
from .progress import progress

DEFAULT_RTX_TARGETS = ("sm89", "sm75")  # RTX 4090 and T4
QUALITY_IMAGES = 4  # calibration images held out of calibration to score the QDQ model (head SQNR, FP32 agreement)


@dataclass
class BuildRequest:
    """Everything `qyolo-trt build` accepts (None = the default)."""

    model: Path | None = None
    calib: str | None = None
    num_images: int | None = None
    method: str = "uh"
    mode: str = "shifted"
    bias_correction: bool = True  # fold each quantized conv's mean error on the calibration images into its bias
    float_dtype: str = "fp16"  # INT8 engines: non-INT8 parts in half precision (GPU targets)
    precision: str = "int8"
    backend: str = "auto"
    gpus: tuple[str, ...] = ()
    batch: tuple[int, int, int] = (1, 1, 1)
    timing_cache: Path | None = None
    nms: dict[str, float] | None = None  # {"score_threshold", "iou_threshold", "max_det"}
    triton_repo: Path | None = None
    model_name: str | None = None
    output: Path | None = None


@dataclass
class _Plan:
    """One engine to build: its targets, precision, the ONNX to feed, and where it goes."""

    targets: tuple[str, ...]
    precision: str
    onnx_model: onnx.ModelProto
    engine_path: Path
    warnings: list[str] = field(default_factory=list)


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
    if src.suffix.lower() in EXPORTABLE:
        with tempfile.TemporaryDirectory(prefix="qyolo-export-") as tmp:
            result = export(src, Path(tmp) / f"{src.stem}.onnx", dynamic_batch=req.batch != (1, 1, 1))
            return src, load_onnx(result.output)
    return src, load_onnx(src)


def _targets(req: BuildRequest, backend: str) -> tuple[str, ...]:
    if req.gpus:
        return parse_targets(req.gpus)
    return DEFAULT_RTX_TARGETS if backend == "tensorrt-rtx" else (require_gpu().cc,)


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


def _groups(req: BuildRequest, backend: str) -> list[tuple[str, ...]]:
    """Targets per engine (checked before any calibration work)."""
    targets = _targets(req, backend)
    return rtx_groups(targets, req.precision) if backend == "tensorrt-rtx" else [targets]


def _plans(req: BuildRequest, groups: list[tuple[str, ...]], backend: str, out: Path, fp32: onnx.ModelProto | None,
           qdq: onnx.ModelProto | None) -> list[_Plan]:
    plans = []
    for group, path in zip(groups, engine_paths(out, groups)):
        if req.precision != "int8":
            plans.append(_Plan(group, req.precision, fp32, path))
        elif backend == "tensorrt-rtx" and set(group) <= RTX_NO_INT8:
            if fp32 is None:
                raise QyoloError(
                    f"TensorRT-RTX has no INT8 kernels for {', '.join(group)} (Turing); pass the FP32 model to get an FP16 engine "
                    "for it, or build INT8 with --backend tensorrt on that GPU"
                )
            note = f"TensorRT-RTX has no INT8 kernels for {', '.join(group)} (Turing): built FP16 instead; use --backend tensorrt there for INT8"
            plans.append(_Plan(group, "fp16", fp32, path, [note]))
        else:
            plans.append(_Plan(group, "int8", qdq, path))
    return plans


def engine_paths(out: Path, groups: list[tuple[str, ...]]) -> list[Path]:
    """``out`` for one engine; ``NAME.<targets>.engine`` beside it for several."""
    return [out] if len(groups) == 1 else [out.with_name(f"{_stem(out)}.{'-'.join(g)}.engine") for g in groups]


def _artifact_paths(req: BuildRequest, out: Path) -> dict[str, Path]:
    return {"scales": out.with_name(f"{_stem(out)}.{req.method}.scales.json"), "qdq_onnx": out.with_name(f"{_stem(out)}.qdq.onnx")}


def _with_nms(model: onnx.ModelProto, info: DetectorInfo, nms: dict[str, float] | None) -> onnx.ModelProto:
    if not nms:
        return model
    from .deploy.nms import add_efficient_nms

    return add_efficient_nms(model, info, **nms)


def _build_all(req: BuildRequest, backend: str, plans: list[_Plan], info: DetectorInfo, src: Path, tmp: Path) -> list[BuildResult]:
    results = []
    for i, plan in enumerate(progress(plans, total=len(plans), desc=f"{backend} build", unit="engine")):
        onnx_path = tmp / f"build{i}.onnx"
        onnx.save(_with_nms(plan.onnx_model, info, req.nms), onnx_path)
        results.append(
            build_engine(onnx_path, backend=backend, precision=plan.precision, targets=plan.targets, batch=req.batch,
                         timing_cache=req.timing_cache, source=f"{src} ({plan.precision}, {', '.join(plan.targets)})")
        )
    return results


def _check_triton(req: BuildRequest, sidecars: list[dict[str, Any]], plans: list[_Plan]) -> None:
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
    if quantized and req.precision != "int8":
        raise QyoloError(f"{src} is already quantized (Q/DQ): build it with --precision int8, or give the FP32 model")


def _quantize(req: BuildRequest, fp32: onnx.ModelProto, images: list[Path], out: Path) -> tuple[onnx.ModelProto, dict[str, tuple[Path, bytes]], bool]:
    """Calibrate (or reuse the scales) and rewrite to Q/DQ; returns the QDQ model and the artifacts to write."""
    from .qdq.bias_correction import BIAS_IMAGES
    from .recipe import Recipe, apply

    paths = _artifact_paths(req, out)
    scales, reused = _scales(req, fp32, images, paths["scales"])
    recipe = Recipe(mode=req.mode, bias_correction=req.bias_correction, bias_images=images,
                    bias_num_images=min(len(images), BIAS_IMAGES), float_dtype=req.float_dtype)
    qdq = apply(fp32, scales, recipe).model
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
    groups = _groups(req, backend)
    out = Path(req.output) if req.output else DEFAULT_ENGINES / f"{_stem(src)}.engine"
    engines = engine_paths(out, groups)
    artifacts_out = list(_artifact_paths(req, out).values()) if req.precision == "int8" and not quantized else []
    refuse_overwrite([*engines, *map(sidecar_path, engines), *artifacts_out], [src, req.timing_cache])
    fp32, qdq, artifacts, reused, quality = (None, model, {}, False, None) if quantized else (model, None, {}, False, None)
    if req.precision == "int8" and not quantized:
        calib, held_out = split_calib(req)
        qdq, artifacts, reused = _quantize(req, model, calib, out)
        quality = _quality(qdq, model, held_out)
    plans = _plans(req, groups, backend, out, fp32, qdq)
    with tempfile.TemporaryDirectory(prefix="qyolo-build-") as tmp:
        results = _build_all(req, backend, plans, info, src, Path(tmp))
    calibrated = "scales" in artifacts
    common = {
        "layout": "nms" if req.nms else info.layout,
        "model_hash": model_hash(model),
        "scales_hash": sha256_bytes(artifacts["scales"][1]) if calibrated else None,
    }
    options = {"model": str(src), "method": req.method if calibrated else None, "mode": req.mode if calibrated else None,
               "bias_correction": req.bias_correction if calibrated else None, "float_dtype": req.float_dtype if calibrated else None,
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
        "targets_note": targets_note(req, backend, groups),
        "quality": quality,
        "written": [str(p) for p in _written(artifacts, plans)] + triton,
    }


def targets_note(req: BuildRequest, backend: str, groups: list[tuple[str, ...]]) -> str:
    """One line on which engines this build makes and why."""
    if req.gpus:
        return f"targets: {', '.join(t for g in groups for t in g)} (--gpu)"
    if backend != "tensorrt-rtx":
        return f"targets: the local GPU ({groups[0][0]})"
    return ("targets: the default set, RTX 4090 (sm89) and T4 (sm75); TensorRT-RTX has no INT8 kernels for Turing, so with "
            "INT8 the T4 gets its own FP16 engine (pass --gpu rtx4090 for one engine named as -o says)")


def _quality(qdq: onnx.ModelProto, fp32: onnx.ModelProto, images: list[Path]) -> dict[str, Any] | None:
    """Head SQNR and FP32 agreement of the QDQ model on the held-out calibration images (None without any)."""
    if not images:
        return None
    from .eval.evaluate import quality

    return quality(qdq, fp32, images)


def _written(artifacts: dict[str, tuple[Path, bytes]], plans: list[_Plan]) -> list[Path]:
    return [p for p, _ in artifacts.values()] + [q for p in plans for q in (p.engine_path, sidecar_path(p.engine_path))]


def _write_all(artifacts: dict[str, tuple[Path, bytes]], results: list[BuildResult], sidecars: list[dict[str, Any]], plans: list[_Plan]) -> None:
    """Write every artifact to a temp file first; rename them all only when all are written."""
    files = [*artifacts.values()]
    for r, s, p in zip(results, sidecars, plans):
        files += [(p.engine_path, r.engine), (sidecar_path(p.engine_path), json_text(s).encode())]
    write_all(files)


def _triton(req: BuildRequest, plan: _Plan, sidecar: dict[str, Any]) -> Path:
    from .deploy.triton import write_triton_repo

    return write_triton_repo(plan.engine_path, sidecar, req.triton_repo, req.model_name)


def _engine_summary(plan: _Plan, sidecar: dict[str, Any]) -> dict[str, Any]:
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
