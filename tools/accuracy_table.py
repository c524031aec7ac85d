#!/usr/bin/env python3
"""The README accuracy table: yolov5n on the shared COCO images, calibrated on the first 32, evaluated on the other 64.

    python tools/accuracy_table.py [--data ../shared/data] [--out runs/accuracy]

Writes OUT/accuracy.json (every number) and OUT/accuracy.md (the table), and prints the table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qyolo_trt.cli.common import format_table, log  # noqa: E402
from qyolo_trt.data import list_images  # noqa: E402
from qyolo_trt.eval.compare import COLUMNS, compare, table_rows  # noqa: E402
from qyolo_trt.errors import QyoloError  # noqa: E402
from qyolo_trt.eval.decode import PostProcess  # noqa: E402
from qyolo_trt.fileio import write_text_atomic  # noqa: E402

NUM_CALIB = 32


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "data", show_default=True, help="The shared data folder.")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "runs" / "accuracy", show_default=True, help="Output folder.")
@click.option("--iou", type=float, default=0.6, show_default=True, help="NMS IoU (yolov5's val setting, as the FP32 reference).")
def main(data: Path, out: Path, iou: float) -> None:
    """Calibrate on the first 32 images and evaluate on the other 64 (disjoint); all methods, all modes, peers."""
    coco = data / "coco" / "instances.json"
    paths = list_images(coco)
    t0 = time.perf_counter()
    result = compare(data / "weights" / "yolov5n.onnx", paths[:NUM_CALIB], paths[NUM_CALIB:], coco, post=PostProcess(iou=iou))
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    table = format_table(table_rows(result), COLUMNS)
    note = (
        f"yolov5n, calibrated on COCO images 1-{NUM_CALIB}, evaluated on {result['eval_images']} others "
        f"(conf {result['settings']['conf']}, NMS IoU {iou}); drop = FP32 - row label mAP50-95 with its paired-bootstrap "
        f"95% CI; FP32 agreement = mAP50-95 against FP32 detections at conf >= 0.25; SQNR over the head convs' raw "
        f"outputs. {result['wall_seconds']} s on this machine."
    )
    write_text_atomic(out / "accuracy.json", json.dumps(result, indent=2, sort_keys=True) + "\n")
    write_text_atomic(out / "accuracy.md", table + "\n\n" + note + "\n")
    log(f"wrote {out / 'accuracy.json'} and {out / 'accuracy.md'}")
    click.echo(table + "\n\n" + note)


if __name__ == "__main__":
    try:
        main()
    except QyoloError as exc:
        sys.exit(f"error: {exc}")
