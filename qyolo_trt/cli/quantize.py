"""`qyolo-trt quantize`: FP32 ONNX + scales (file, TensorRT cache, or calibrate now) -> QDQ ONNX."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..defaults import (BIAS_IMAGES, BITS_RANGE, DEFAULT_BITS, DEFAULT_METHOD, DEFAULT_TARGET, DEFAULT_WEIGHT_CLIP, FLOAT_DTYPES,
                        METHODS, MODES, RECONSTRUCT_IMAGES, RECONSTRUCT_ITERS,
                        SENSITIVITY_IMAGES, TARGETS, WEIGHT_CLIPS, default_model)
from ..errors import QyoloError
from ..fileio import refuse_overwrite, write_bytes_atomic
from .common import FiniteFloatRange, emit, json_option, keep_float_parts, log


@click.command("quantize")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--scales", "scales_path", type=click.Path(path_type=Path), help="Scales file from `qyolo-trt calibrate`.")
@click.option("--calib-cache", type=click.Path(path_type=Path), help="TensorRT calibration cache (symmetric scales; no model hash).")
@click.option("--images", help="Calibrate on these images first (folder, YOLO dataset, .txt list, COCO json).")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True, help="Calibration method with --images.")
@click.option("--num-images", type=click.IntRange(1), default=None, help="With --images: at most this many images.")
@click.option("--target", type=click.Choice(TARGETS), default=DEFAULT_TARGET, show_default=True,
              help="Runtime the Q/DQ placement is made for: tensorrt (explicit quantization), openvino (CPU plugin: residual "
                   "Adds float), ort (ONNX Runtime CPU: a Q after every conv and SiLU step, so QLinearConv forms; the "
                   "pre-SiLU ranges are measured on the bias-correction images).")
@click.option("--mode", type=click.Choice(MODES),
              help="shifted (TensorRT default; shifted-symmetric UH where it folds exactly, symmetric elsewhere) and symmetric: "
                   "TensorRT; asymmetric (zero points, uint8): the openvino and ort default. With --bits < 8: symmetric.")
@click.option("--weight-clip", type=click.Choice(WEIGHT_CLIPS), default=DEFAULT_WEIGHT_CLIP, show_default=True,
              help="Per-channel weight clip: minmax, or mse (lowest weight error; measured worse on yolov5n head SQNR).")
@click.option("--exclude", multiple=True, metavar="REGEX", help="Keep nodes whose name matches REGEX in float (repeatable).")
@click.option("--keep-float", default=None, help="Comma list of first-conv,head, or none.  [default: head; below 8 bits: head,first-conv]")
@click.option("--allow-missing", is_flag=True, help="Leave ops whose tensors have no scale in float (reported) instead of failing.")
@click.option("--auto-fallback", "fallback_k", type=click.IntRange(0), default=None,
              help="Keep the K most sensitive layers float (ranked by `qyolo-trt sensitivity` on --fallback-images).")
@click.option("--fallback-budget", "fallback_db", type=FiniteFloatRange(0, 200), default=None,
              help="Keep the fewest most-sensitive layers float that bring the head-output SQNR vs FP32 (dB, on --fallback-images) to this.")
@click.option("--fallback-images", default=None, help="Images for the fallback ranking (default: --images, else the embedded calib_data/).")
@click.option("--fallback-num-images", type=click.IntRange(1), default=SENSITIVITY_IMAGES, show_default=True, help="Use the first N fallback images.")
@click.option("--bits", type=click.IntRange(*BITS_RANGE), default=DEFAULT_BITS, show_default=True,
              help="Low-bit simulation (W{b}A{b}, fake-quantized for ONNX Runtime; int4 weights at 4): the scales must be calibrated for it.")
@click.option("--weight-bits", type=click.IntRange(*BITS_RANGE), default=None, help="Weight width (default: --bits), e.g. W4A8.")
@click.option("--act-bits", type=click.IntRange(*BITS_RANGE), default=None,
              help="Activation width (default: --bits), e.g. W8A4: the scales must be calibrated for it.")
@click.option("--bias-correction", is_flag=True,
              help="Fold each quantized conv's mean output error (vs a float twin, on --images or the embedded calib_data/) into its bias.")
@click.option("--bias-num-images", type=click.IntRange(1), default=BIAS_IMAGES, show_default=True, help="Images for --bias-correction.")
@click.option("--reconstruct", is_flag=True,
              help="Learn each conv's weight rounding and refit its bias, block by block, against the FP32 model on --images "
                   "(or the embedded calib_data/): AdaRound + BRECQ + QDrop, label-free. Needs torch (the export extra).")
@click.option("--reconstruct-iters", type=click.IntRange(0, 100_000), default=RECONSTRUCT_ITERS, show_default=True, help="Optimisation steps per block.")
@click.option("--reconstruct-num-images", type=click.IntRange(1), default=RECONSTRUCT_IMAGES, show_default=True, help="Images for --reconstruct.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of --reconstruct (crops, QDrop masks, batches).")
@click.option("--shift-padded", is_flag=True,
              help="Shifted mode: also shift the inputs of padded (3x3) convs, their padding moved into a Pad before the shift "
                   "(best SQNR with --reconstruct on both real models, but not the best agreement everywhere: README).")
@click.option("--float-dtype", type=click.Choice(FLOAT_DTYPES), default=FLOAT_DTYPES[0], show_default=True,
              help="Non-INT8 parts (float convs, biases, head, decode, Q/DQ scales) in fp16: for GPU targets (TensorRT); fp32 for CPU.")
@click.option("--io-dtype", type=click.Choice(FLOAT_DTYPES), default=FLOAT_DTYPES[0], show_default=True,
              help="Graph input/output dtype of an --float-dtype fp16 model (fp32: a Cast at each end).")
@click.option("--skip-hash-check", is_flag=True, help="Use --scales made for another model (e.g. the same weights re-exported).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output QDQ ONNX path.")
@json_option
def quantize_cmd(
    model: Path | None, scales_path: Path | None, calib_cache: Path | None, images: str | None, method: str, num_images: int | None,
    target: str, mode: str | None, weight_clip: str, exclude: tuple[str, ...], keep_float: str | None, allow_missing: bool, fallback_k: int | None, fallback_db: float | None,
    fallback_images: str | None, fallback_num_images: int, bits: int, weight_bits: int | None, act_bits: int | None, bias_correction: bool, bias_num_images: int,
    reconstruct: bool, reconstruct_iters: int, reconstruct_num_images: int, seed: int, shift_padded: bool, float_dtype: str, io_dtype: str, skip_hash_check: bool, output: Path, as_json: bool,
) -> None:
    """Rewrite MODEL (default: the embedded yolov5n) into a QDQ ONNX model placed for --target (TensorRT by default)."""
    model = model or default_model()
    if sum(x is not None for x in (scales_path, calib_cache, images)) != 1:
        raise QyoloError("give exactly one of --scales, --calib-cache, --images")
    from ..calib.scales import ScalesFile
    from ..qdq.config import QuantizeConfig

    config = QuantizeConfig(
        mode=mode, target=target, weight_clip=weight_clip, exclude=exclude,
        keep_float=keep_float_parts(keep_float), allow_missing=allow_missing, check_hash=calib_cache is None and not skip_hash_check,
        fallback_k=fallback_k, fallback_db=fallback_db, fallback_images=fallback_images,
        fallback_num_images=fallback_num_images, bias_correction=bias_correction,
        bias_num_images=bias_num_images, reconstruct=reconstruct, reconstruct_iters=reconstruct_iters,
        reconstruct_num_images=reconstruct_num_images, seed=seed, shift_padded=shift_padded, bits=bits, weight_bits=weight_bits, act_bits=act_bits, float_dtype=float_dtype, io_dtype=io_dtype,
    )  # fmt: skip
    from ..api import quantize

    refuse_overwrite([output], [model, scales_path, calib_cache])
    start = time.perf_counter()
    if scales_path is not None:
        scales, source = ScalesFile.load(scales_path), str(scales_path)
    elif calib_cache is not None:
        scales, source = ScalesFile.from_trt_cache(calib_cache), str(calib_cache)
    else:
        scales, source = None, f"{method} on {images}"
    result = quantize(model, scales, images=images, config=config, method=method, num_images=num_images)
    write_bytes_atomic(output, result.model.SerializeToString())
    log(f"quantize: wrote {output} in {time.perf_counter() - start:.2f} s")
    emit({"model": str(model), "scales": source, "output": str(output), "report": result.report}, as_json, _text)


def _text(result: dict[str, Any]) -> str:
    from ..qdq.passes.lowbit import width_label

    report = result["report"]
    quantized = ", ".join(f"{op} {n}" for op, n in report["quantized"].items())
    reasons: dict[str, int] = {}
    for entry in report["float_nodes"]:  # grouped by kind ("fallback: sensitivity rank 2 (...)" counts as "fallback")
        kind = entry["reason"].split(":")[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    lines = [
        f"{result['output']}  (target {report.get('target', DEFAULT_TARGET)}, mode {report['mode']}, {width_label(report)}, scales {result['scales']})",
        f"quantized: {quantized or 'nothing'}",
        f"kept float: {', '.join(f'{r} {n}' for r, n in reasons.items()) or 'nothing'}",
    ]
    if report["shifted"]:
        lines.append(f"shifted tensors: {len(report['shifted'])}")
    if report["missing"]:
        lines.append(f"missing scales: {', '.join(report['missing'])}")
    if bc := report.get("bias_correction"):
        lines.append(f"bias correction: {bc['convs']} convs on {bc['images']} images")
    if rc := report.get("reconstruction"):
        lines.append(f"reconstruction: {rc['weights']} convs on {rc['images']} images, {rc['iters']} steps per block, "
                     f"block loss {rc['loss_before']:.4g} -> {rc['loss_after']:.4g}")
    if fb := report.get("fallback"):
        db = f"{fb['sqnr_db']:.2f}" if isinstance(fb["sqnr_db"], float) else fb["sqnr_db"]
        lines.append(f"float fallback ({fb['policy']}, head SQNR {db} dB on {fb['num_images']} images): "
                     + (", ".join(f"{u['unit']} (score {u['score']:.3g})" for u in fb["layers"]) or "none"))
    return "\n".join(lines)
