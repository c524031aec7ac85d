"""`qyolo-trt eval`: COCO mAP of a model or engine, and its agreement with an FP32 reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..backends import RUNNERS, default_backend
from .common import emit, json_option, log, post_options


@click.command("eval")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--data", required=True, type=click.Path(path_type=Path), help="COCO instances json, YOLO set (images/ + labels/), or images with --reference.")
@click.option("--backend", type=click.Choice(list(RUNNERS)), default=None, help="Runtime (default: trt for .engine, else ort).")
@click.option("--reference", type=click.Path(path_type=Path), default=None, help="FP32 ONNX: also report FP32 agreement and head SQNR.")
@post_options
@click.option("--num-images", type=click.IntRange(1), default=None, help="Evaluate only the first N images.")
@json_option
def eval_cmd(
    model: Path, data: Path, backend: str | None, reference: Path | None, conf: float, iou: float, max_det: int,
    num_images: int | None, as_json: bool,
) -> None:
    """Evaluate MODEL (.onnx, .qdq.onnx or .engine) on --data: mAP50-95 / mAP50 (pycocotools), with
    --reference also the FP32 agreement (mAP of MODEL's detections against the reference's at conf >= 0.25)
    and the SQNR of the raw head outputs."""
    from ..api import evaluate
    from ..eval.decode import PostProcess

    backend = backend or default_backend(model)
    post = PostProcess(conf=conf, iou=iou, max_det=max_det)
    result = evaluate(model, data, backend=backend, reference=reference, post=post, num_images=num_images)
    if result["skipped"]:
        log(f"eval: skipped {len(result['skipped'])} unreadable image(s)")
    emit(result, as_json, _text)


def _text(r: dict[str, Any]) -> str:
    lines = [f"{r['model']} on {r['data']} ({r['backend']}): {r['images']} images, {r['seconds']:.1f} s ({r['ms_per_image']} ms/img)"]
    if "map50_95" in r:
        lines.append(f"  mAP50-95 {r['map50_95']:.4f}  mAP50 {r['map50']:.4f}")
    if "agreement" in r:
        lines.append(f"  FP32 agreement {r['agreement']:.4f} (mAP50 {r['agreement50']:.4f})  head SQNR {_db(r['sqnr_db'])} dB")
    return "\n".join(lines)


def _db(v: float | str) -> str:
    return v if isinstance(v, str) else f"{v:.2f}"
