"""`qyolo-trt sensitivity`: quantize one layer (or shared-scale group) at a time and rank the damage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..defaults import MODES, SENSITIVITY_IMAGES, SENSITIVITY_METRICS, BASE_MODE, default_calib, default_model
from .common import emit, format_table, json_option, keep_float_parts, log

COLUMNS = ["rank", "unit", "ops", "score", "SQNR dB"]


@click.command("sensitivity")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--scales", "scales_path", required=True, type=click.Path(path_type=Path), help="Scales file from `qyolo-trt calibrate`.")
@click.option("--images", default=None, help="Images to measure on (default: the embedded calib_data/); use calibration images, not evaluation ones.")
@click.option("--num-images", type=click.IntRange(1), default=SENSITIVITY_IMAGES, show_default=True, help="Use the first N images.")
@click.option("--metric", type=click.Choice(SENSITIVITY_METRICS), default=SENSITIVITY_METRICS[0], show_default=True,
              help="mse: noise / signal energy of the head outputs; cosine: 1 - cosine similarity.")
@click.option("--mode", type=click.Choice(MODES), default=BASE_MODE, show_default=True, help="QDQ mode.")
@click.option("--keep-float", default="head", show_default=True, help="Comma list of first-conv,head, or none (never ranked).")
@click.option("--top", type=click.IntRange(1), default=None, help="Print only the K most sensitive units.")
@json_option
def sensitivity_cmd(
    model: Path | None, scales_path: Path, images: str | None, num_images: int, metric: str, mode: str, keep_float: str,
    top: int | None, as_json: bool,
) -> None:
    """Rank every quantized layer of MODEL (default: the embedded yolov5n) by the damage it alone does to the
    head convs' raw outputs against FP32 (all other layers float). A Concat with its MaxPool / Resize
    inputs shares one scale and is ranked as one unit."""
    from ..analysis import layer_sensitivity, load_feeds
    from ..calib.scales import ScalesFile
    from ..model import load_onnx
    from ..qdq.config import QuantizeConfig

    model = model or default_model()
    proto = load_onnx(model)
    scales = ScalesFile.load(scales_path)
    feeds = load_feeds(proto, images or default_calib(), num_images)
    parts = keep_float_parts(keep_float)
    result = layer_sensitivity(proto, scales, feeds, QuantizeConfig(mode=mode, keep_float=parts), metric=metric).to_dict()
    measured = len(result["ranking"])
    if top is not None:
        result["ranking"] = result["ranking"][:top]
    shown = f", showing the top {len(result['ranking'])}" if len(result["ranking"]) < measured else ""
    log(f"sensitivity: measured {measured} unit(s) in {result['seconds']:.1f} s{shown}")
    emit({"model": str(model), "scales": str(scales_path), **result}, as_json, _text)


def _text(result: dict[str, Any]) -> str:
    rows = [{"rank": r["rank"], "unit": r["unit"], "ops": "+".join(r["ops"]), "score": r["score"], "SQNR dB": r["sqnr_db"]}
            for r in result["ranking"]]  # fmt: skip
    head = (f"{result['model']}: each unit quantized alone, {result['metric']} on {', '.join(result['outputs'])} "
            f"over {result['num_images']} image(s); all units together: {_db(result['full_sqnr_db'])}")  # fmt: skip
    return head + "\n" + format_table(rows, COLUMNS, floatfmt=".4g")


def _db(v: float | str) -> str:
    return f"{v:.2f} dB" if isinstance(v, float) else f"{v} dB"
