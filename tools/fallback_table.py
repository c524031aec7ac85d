#!/usr/bin/env python3
"""The float-fallback and low-bit tables: yolov5n on the shared COCO images, calibrated (and ranked) on the
first 32, evaluated on the other 64, with the OpenVINO latency of each fallback model.

    python tools/fallback_table.py [--data ../shared/data] [--out runs/fallback] [--ks 0,1,2,4,8] [--bits 4,6]

Rows: FP32; uh/symmetric, uh/asymmetric, percentile/symmetric (W8A8); uh/symmetric with the K most sensitive
units float (sensitivity on 8 calibration images); W{b}A{b} rows for UH and percentile. Writes OUT/fallback.json,
OUT/fallback.md and the fallback models OUT/models/*.onnx (for the interleaved OpenVINO bench).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qyolo_trt.analysis.rows import chained, fallback_rows, lowbit_rows  # noqa: E402
from qyolo_trt.bench import plan, run_bench  # noqa: E402
from qyolo_trt.cli.common import format_table, log  # noqa: E402
from qyolo_trt.data import list_images  # noqa: E402
from qyolo_trt.errors import QyoloError  # noqa: E402
from qyolo_trt.eval.compare import COLUMNS, compare, table_rows  # noqa: E402
from qyolo_trt.eval.decode import PostProcess  # noqa: E402
from qyolo_trt.fileio import write_bytes_atomic, write_text_atomic  # noqa: E402

NUM_CALIB = 32
METHODS = ("uh", "percentile")
MODES = ("symmetric", "asymmetric")


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "data", show_default=True, help="The shared data folder.")
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "runs" / "fallback", show_default=True, help="Output folder.")
@click.option("--ks", default="0,1,2,4,8", show_default=True, help="Fallback counts K.")
@click.option("--bits", default="4,6", show_default=True, help="Low-bit widths (empty: none).")
@click.option("--iters", type=int, default=20, show_default=True, help="Interleaved OpenVINO bench rounds.")
def main(data: Path, out: Path, ks: str, bits: str, iters: int) -> None:
    coco = data / "coco" / "instances.json"
    model_path = data / "weights" / "yolov5n.onnx"
    paths = list_images(coco)
    made: list = []

    def extra(model: onnx.ModelProto, calib: list[Path]) -> list:
        made.extend(chained(fallback_rows("uh", _ints(ks)), lowbit_rows(METHODS, MODES, _ints(bits)))(model, calib))
        return made

    t0 = time.perf_counter()
    result = compare(model_path, paths[:NUM_CALIB], paths[NUM_CALIB:], coco, methods=METHODS, modes=MODES, peers=False,
                     post=PostProcess(iou=0.6), extra_variants=extra)  # fmt: skip
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    fallback = [v for v in made if "fallback_k" in v.info]
    files = [model_path]
    for v in fallback:
        files.append(out / "models" / f"fallback{v.info['fallback_k']}.onnx")
        write_bytes_atomic(files[-1], v.model.SerializeToString())
    log(f"bench: OpenVINO, {iters} interleaved rounds over {len(files)} models")
    bench = run_bench(plan(files, "openvino", ov_precision="auto"), warmup=3, iters=iters)
    result["bench"] = bench
    table = format_table(table_rows(result), COLUMNS)
    bench_rows = [{"model": r["label"], "p50 ms": r["p50_ms"], "ratio vs FP32 f32": r["ratio"]} for r in bench["rows"]]
    btable = format_table(bench_rows, ["model", "p50 ms", "ratio vs FP32 f32"], floatfmt=".2f")
    units = "\n".join(f"K={v.info['fallback_k']}: {', '.join(v.info['fallback_units']) or '-'}" for v in fallback)
    text = f"{table}\n\n{btable}\n\nfloat units per K (most sensitive first):\n{units}\n\n{result['wall_seconds']} s (accuracy part)"
    write_text_atomic(out / "fallback.json", json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    write_text_atomic(out / "fallback.md", text + "\n")
    click.echo(text)


if __name__ == "__main__":
    try:
        main()
    except QyoloError as exc:
        sys.exit(f"error: {exc}")
