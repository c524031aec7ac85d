#!/usr/bin/env python3
"""Split low-bit widths on yolov5n: W4A4, W8A4, W4A8 (UH, symmetric), each plain and with reconstruction (+rc).

    python tools/bench_lowbit.py [--data ../shared/data] [--out runs/lowbit] [--widths 4,w8a4,w4a8] [--iters 100]

Calibrates (and reconstructs) on the first 32 of the sorted shared COCO images and scores on the other 64 with
``compare``: label mAP50-95 with the drop's paired-bootstrap 95% CI, FP32 agreement, head SQNR; plus each row's
label mAP50-95 as a percentage of FP32's. The same rows as
``qyolo-trt compare MODEL --calib LIST --data instances.json --methods uh --modes symmetric --no-peers
--no-bias-correction --bits 4,w8a4,w4a8 --reconstruct 4,w8a4,w4a8``. Writes OUT/lowbit.json and OUT/lowbit.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qyolo_trt.analysis.rows import chained, lowbit_rows, reconstruct_rows  # noqa: E402
from qyolo_trt.cli.common import format_table  # noqa: E402
from qyolo_trt.cli.compare import parse_widths  # noqa: E402
from qyolo_trt.data import list_images  # noqa: E402
from qyolo_trt.errors import QyoloError  # noqa: E402
from qyolo_trt.eval.compare import COLUMNS, compare, table_rows  # noqa: E402
from qyolo_trt.fileio import write_json_atomic, write_text_atomic  # noqa: E402

NUM_CALIB = 32
OF_FP32 = "mAP50-95 % of FP32"


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "data", show_default=True, help="The shared data folder.")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "runs" / "lowbit", show_default=True, help="Output folder.")
@click.option("--widths", default="4,w8a4,w4a8", show_default=True, help="Widths: b (W{b}A{b}) or wXaY, comma separated.")
@click.option("--iters", type=click.IntRange(0), default=100, show_default=True, help="Reconstruction steps per block.")
def main(data: Path, out: Path, widths: str, iters: int) -> None:
    pairs = parse_widths("--widths", widths)
    images = sorted(list_images(data / "coco" / "images"))
    model = data / "weights" / "yolov5n.onnx"
    t0 = time.perf_counter()
    result = compare(model, images[:NUM_CALIB], images[NUM_CALIB:], data / "coco" / "instances.json", methods=("uh",), modes=("symmetric",),
                     peers=False, bias_correction=False, extra_variants=chained(lowbit_rows(("uh",), ("symmetric",), pairs), reconstruct_rows(pairs, iters)))
    result.update(wall_seconds=round(time.perf_counter() - t0, 1), reconstruct_iters=iters)
    fp32 = result["rows"][0]["map50_95"]
    rows = [{**shown, OF_FP32: f"{100 * r['map50_95'] / fp32:.1f}"} for shown, r in zip(table_rows(result), result["rows"])]
    table = format_table(rows, [*COLUMNS, OF_FP32])
    note = (f"yolov5n, UH symmetric, calibrated (and reconstructed, {iters} steps per block) on COCO images 0-{NUM_CALIB - 1}, "
            f"scored on {result['eval_images']} others; {result['wall_seconds']} s on this machine.")
    write_json_atomic(out / "lowbit.json", result)
    write_text_atomic(out / "lowbit.md", f"{table}\n\n{note}\n")
    click.echo(f"{table}\n\n{note}\nwrote {out / 'lowbit.json'}, {out / 'lowbit.md'}")


if __name__ == "__main__":
    try:
        main()
    except QyoloError as exc:
        sys.exit(f"error: {exc}")
