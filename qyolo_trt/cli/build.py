"""`qyolo-trt build`: FP32 / QDQ ONNX or .pt -> INT8 (or FP16/FP32) TensorRT engine(s) with a sidecar report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..defaults import (BUILD_BIAS_CORRECTION, BUILD_FLOAT_DTYPE, BUILD_RECONSTRUCT, DEFAULT_METHOD, DEFAULT_MODE, DEFAULT_PRECISION, ENGINE_PRECISIONS,
                        FLOAT_DTYPES, METHODS, RECONSTRUCT_ITERS, TENSORRT_MODES)
from .common import FiniteFloatRange, emit, json_option


def _number(value: Any, fmt: str) -> str:
    """A measured number, or its JSON stand-in ("inf", "nan": e.g. no confident FP32 detection to agree with) as is."""
    return format(value, fmt) if isinstance(value, (int, float)) else str(value)


def _text(result: dict[str, Any]) -> str:
    from ..backends.tensorrt.sidecar import short_list

    lines = [result["targets_note"]]
    for e in result["engines"]:
        lines.append(f"{e['engine']}: {result['backend']} {e['precision']} for {', '.join(e['targets'])}")
        lines.append(f"  convs with INT8 input: {e['conv_int8']}/{e['conv_total']}; layers: {e['layers']} "
                     + "(" + ", ".join(f"{k} {v}" for k, v in e["layers_by_type"].items()) + ")")
        lines.append("  layer outputs by dtype: " + ", ".join(f"{k} {v}" for k, v in e["output_dtypes"].items()))
        if e["precision"] == "int8":
            lines.append(f"  float convs: {short_list(e['float_convs'])}")
        lines += [f"  warning: {w}" for w in e["warnings"]]
    for kind, path in result["artifacts"].items():
        lines.append(f"{kind}: {path}" + (" (reused)" if kind == "scales" and result["scales_reused"] else ""))
    lines += [f"triton: {t}" for t in result["triton"]]
    if q := result["quality"]:
        lines.append(f"quality: head SQNR {_number(q['sqnr_db'], '.1f')} dB, FP32 agreement {_number(q['agreement'], '.3f')} "
                     f"on {q['images']} calibration images held out of calibration")
    lines.append("wrote: " + ", ".join(result["written"]))
    return "\n".join(lines)


@click.command("build")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--calib", help="Calibration images (folder, list, YOLO set, COCO json). Default: the embedded calib_data/.")
@click.option("--num-images", type=click.IntRange(min=1), help="Use at most N calibration images.")
@click.option("--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True, help="Calibration method.")
@click.option("--mode", type=click.Choice(TENSORRT_MODES), default=DEFAULT_MODE, show_default=True,
              help="Q/DQ form: shifted-symmetric UH where it folds exactly (1x1 consumers), symmetric elsewhere; or symmetric everywhere.")
@click.option("--bias-correction/--no-bias-correction", default=BUILD_BIAS_CORRECTION, show_default=True,
              help="Fold each quantized conv's mean output error on the calibration images into its float bias.")
@click.option("--reconstruct/--no-reconstruct", default=BUILD_RECONSTRUCT, show_default=True,
              help="Learn each conv's weight rounding and refit its bias on the calibration images (AdaRound + BRECQ + QDrop; torch).")
@click.option("--reconstruct-iters", type=click.IntRange(0, 100_000), default=RECONSTRUCT_ITERS, show_default=True, help="Optimisation steps per block.")
@click.option("--float-dtype", type=click.Choice(FLOAT_DTYPES), default=BUILD_FLOAT_DTYPE, show_default=True,
              help="INT8 engines: what is not INT8 (float convs, head, decode) in fp16 (the QDQ model is converted), or fp32.")
@click.option("--precision", type=click.Choice(ENGINE_PRECISIONS), default=DEFAULT_PRECISION, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]), default="auto", show_default=True,
              help="auto: TensorRT when it and a GPU are present, else TensorRT-RTX (ahead of time, no GPU).")
@click.option("--gpu", "gpus", multiple=True, help="Target GPU(s): rtx4090, t4, a100, sm89, ... (repeat or comma list). "
              "Default: RTX 4090 + T4 with TensorRT-RTX, the local GPU with TensorRT.")
@click.option("--batch", type=click.IntRange(min=1), help="Static batch size (min = opt = max).")
@click.option("--min-batch", type=click.IntRange(min=1), help="Dynamic batch profile: min.")
@click.option("--opt-batch", type=click.IntRange(min=1), help="Dynamic batch profile: opt (default: max).")
@click.option("--max-batch", type=click.IntRange(min=1), help="Dynamic batch profile: max.")
@click.option("--timing-cache", type=click.Path(path_type=Path), help="TensorRT timing cache file (read if present, then updated).")
@click.option("--nms", is_flag=True, help="Append EfficientNMS_TRT: outputs num_dets, det_boxes, det_scores, det_classes.")
@click.option("--nms-score", type=FiniteFloatRange(0, 1), default=0.25, show_default=True)
@click.option("--nms-iou", type=FiniteFloatRange(0, 1), default=0.45, show_default=True)
@click.option("--nms-max-det", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--triton-repo", type=click.Path(path_type=Path), help="Also write a Triton model repository here.")
@click.option("--model-name", help="Triton model name (default: the engine's stem).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Engine path (default: engines/NAME.engine).")
@json_option
def build_cmd(model: Path | None, gpus: tuple[str, ...], batch: int | None, min_batch: int | None, opt_batch: int | None,
              max_batch: int | None, nms: bool, nms_score: float, nms_iou: float, nms_max_det: int, as_json: bool, **opts: Any) -> None:
    """Build TensorRT engine(s) from MODEL (.onnx, .qdq.onnx, .pt or .yaml; default: the embedded yolov5n).

    FP32 models are calibrated and quantized first (scales and QDQ model are kept beside the engine and
    reused); with TensorRT-RTX, Turing (sm75) targets get their own FP16 engine.
    """
    from ..api import build
    from ..pipeline import batch_profile

    profile = batch_profile(batch, min_batch, opt_batch, max_batch)
    nms_opts = {"score_threshold": nms_score, "iou_threshold": nms_iou, "max_det": nms_max_det} if nms else None
    result = build(model, gpus=gpus, batch=profile, nms=nms_opts, **opts)
    emit(result, as_json, _text)
