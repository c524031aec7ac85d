"""`qyolo-trt quantize`: FP32 ONNX + scales (file, TensorRT cache, or calibrate now) -> QDQ ONNX."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..calib.scales import ScalesFile, read_trt_cache
from ..defaults import default_model
from ..errors import QyoloError
from ..fileio import write_bytes_atomic
from ..model import load_onnx
from ..qdq import MODES, quantize
from .common import emit, json_option, log


@click.command("quantize")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--scales", "scales_path", type=click.Path(path_type=Path), help="Scales file from `qyolo-trt calibrate`.")
@click.option("--calib-cache", type=click.Path(path_type=Path), help="TensorRT calibration cache (symmetric scales; no model hash).")
@click.option("--images", help="Calibrate on these images first (folder, YOLO dataset, .txt list, COCO json).")
@click.option("--method", default="uh", show_default=True, help="Calibration method with --images.")
@click.option("--num-images", type=int, default=None, help="With --images: at most this many images.")
@click.option("--mode", type=click.Choice(MODES), default="symmetric", show_default=True,
              help="symmetric/shifted: TensorRT; asymmetric (zero points): ONNX Runtime / OpenVINO only.")
@click.option("--exclude", multiple=True, metavar="REGEX", help="Keep nodes whose name matches REGEX in float (repeatable).")
@click.option("--keep-float", default="head", show_default=True, help="Comma list of first-conv,head, or none.")
@click.option("--allow-missing", is_flag=True, help="Leave ops whose tensors have no scale in float (reported) instead of failing.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output QDQ ONNX path.")
@json_option
def quantize_cmd(
    model: Path | None, scales_path: Path | None, calib_cache: Path | None, images: str | None, method: str, num_images: int | None,
    mode: str, exclude: tuple[str, ...], keep_float: str, allow_missing: bool, output: Path, as_json: bool,
) -> None:
    """Rewrite MODEL (default: the embedded yolov5n) into a QDQ ONNX model with TensorRT-aware placement."""
    model = model or default_model()
    if sum(x is not None for x in (scales_path, calib_cache, images)) != 1:
        raise QyoloError("give exactly one of --scales, --calib-cache, --images")
    proto = load_onnx(model)
    start = time.perf_counter()
    scales, source = _scales(proto, scales_path, calib_cache, images, method, num_images)
    parts = tuple(p.strip() for p in keep_float.split(",") if p.strip() and p.strip() != "none")
    result = quantize(proto, scales, mode=mode, exclude=exclude, keep_float=parts, allow_missing=allow_missing, check_hash=calib_cache is None)
    write_bytes_atomic(output, result.model.SerializeToString())
    log(f"quantize: wrote {output} in {time.perf_counter() - start:.2f} s")
    emit({"model": str(model), "scales": source, "output": str(output), "report": result.report}, as_json, _text)


def _scales(proto, scales_path: Path | None, calib_cache: Path | None, images: str | None, method: str, num_images: int | None) -> tuple[ScalesFile, str]:
    if scales_path is not None:
        return ScalesFile.load(scales_path), str(scales_path)
    if calib_cache is not None:
        header, scales = read_trt_cache(calib_cache)
        return ScalesFile.from_symmetric(scales, method=header), str(calib_cache)
    from ..calib import calibrate  # heavy: ORT pass over the images

    log(f"quantize: calibrating ({method}) on {images}")
    return calibrate(proto, images, methods=(method,), num_images=num_images)[method], f"{method} on {images}"


def _text(result: dict[str, Any]) -> str:
    report = result["report"]
    quantized = ", ".join(f"{op} {n}" for op, n in report["quantized"].items())
    reasons: dict[str, int] = {}
    for entry in report["float_nodes"]:
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    lines = [
        f"{result['output']}  (mode {report['mode']}, scales {result['scales']})",
        f"quantized: {quantized or 'nothing'}",
        f"kept float: {', '.join(f'{r} {n}' for r, n in reasons.items()) or 'nothing'}",
    ]
    if report["shifted"]:
        lines.append(f"shifted tensors: {len(report['shifted'])}")
    if report["missing"]:
        lines.append(f"missing scales: {', '.join(report['missing'])}")
    return "\n".join(lines)
