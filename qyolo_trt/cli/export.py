"""`qyolo-trt export`: Ultralytics .pt / .yaml -> ONNX (offline), or validate an .onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import emit, json_option, log


@click.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--imgsz", type=click.IntRange(32, 4096), default=None, help="Square input size, a multiple of 32 (default 640).")
@click.option("--opset", type=click.IntRange(1), default=None, help="ONNX opset, 13..20 (default 17).")
@click.option("--dynamic-batch", is_flag=True, help="Symbolic batch axis (H and W stay fixed).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Output .onnx (default <stem>.onnx here; for an .onnx input: copy it there after validation).")
@json_option
def export_cmd(model: Path, imgsz: int | None, opset: int | None, dynamic_batch: bool, output: Path | None,
               as_json: bool) -> None:
    """Export an Ultralytics YOLOv5u/v8/11 detector (MODEL.pt, or MODEL.yaml with seed-0 random weights) to ONNX,
    or validate MODEL.onnx (anchor-free, anchor-based or NMS head).

    Offline: never downloads. A classic yolov5 .pt is exported with yolov5's own export.py first.
    """
    from ..export import export

    result = export(model, output, imgsz=imgsz, opset=opset, dynamic_batch=dynamic_batch)
    if model.suffix.lower() in (".yaml", ".yml"):
        log(f"export: warning: {model.name} is an architecture, not weights: the model has random weights (seed 0), "
            "fine for structure and speed checks, meaningless for accuracy")
    emit(result.to_dict(), as_json, _text)


def _text(r: dict[str, Any]) -> str:
    verb = "validated" if r["exporter"] == "validated" else f"exported ({r['exporter']})"
    where = f" -> {r['output']}" if r["output"] else ""
    batch = "dynamic" if r["dynamic_batch"] else r["input_shape"][0]
    return (
        f"{verb}: {r['source']}{where}\n"
        f"  layout {r['layout']}, {r['num_classes']} classes, input {r['input_name']} {r['input_shape']} (batch {batch}), "
        f"output {r['output_names'][0]} {r['output_shape']}, opset {r['opset']}"
    )
