#!/usr/bin/env python3
"""FP16 float parts of INT8 engines: does the FP16 QDQ model keep the FP32 QDQ model's accuracy (ONNX Runtime)?

    python tools/float16_table.py [--data ../shared/data] [--out runs/float16] [--splits 0,32]

For each real model (yolov5n, fall_yolov8s) and each split, calibrate with `build`'s recipe (UH, shifted, bias
correction) on 32 shared COCO images, then score the FP32-float and FP16-float QDQ models on 32 other images (FP32
agreement and head SQNR against the FP32 model; ONNX Runtime runs the FP16 graph with fp16 storage between nodes).
Writes OUT/float16.json and OUT/float16.md. The engines' precision mix: tools/float16_engines.py; latency needs a
GPU: tools/gpu_smoke.sh.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qyolo_trt import Recipe, quantize  # noqa: E402
from qyolo_trt.cli.common import format_table, log  # noqa: E402
from qyolo_trt.data import list_images  # noqa: E402
from qyolo_trt.eval.evaluate import quality  # noqa: E402
from qyolo_trt.fileio import json_text, write_text_atomic  # noqa: E402
from qyolo_trt.model import load_onnx  # noqa: E402

MODELS = ("yolov5n", "fall_yolov8s")
NUM = 32
MAX_AGREEMENT, MAX_SQNR_DB = 0.005, 0.5  # issue 18: FP16 QDQ within this of the FP32 QDQ model, on images not calibrated on
COLUMNS = ["model", "split", "float dtype", "FP32 agreement", "head SQNR dB", "d agreement", "d SQNR dB"]


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "data", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "runs" / "float16", show_default=True)
@click.option("--splits", default="0,32", show_default=True, help="First calibration image of each split (scored on the next 32).")
def main(data: Path, out: Path, splits: str) -> None:
    paths = list_images(data / "coco" / "images")
    rows = []
    for name in MODELS:
        fp32 = load_onnx(data / "weights" / f"{name}.onnx")
        for start in (int(s) for s in splits.split(",")):
            calib, score = paths[start : start + NUM], [p for p in paths if p not in paths[start : start + NUM]][start : start + NUM]
            pair = []
            for dtype in ("fp32", "fp16"):
                t0 = time.perf_counter()
                qdq = quantize(fp32, images=calib, config=Recipe(mode="shifted", bias_correction=True, float_dtype=dtype)).model
                q = quality(qdq, fp32, score)
                pair.append({"model": name, "split": f"calib {start}-{start + NUM - 1}", "float dtype": dtype,
                             "FP32 agreement": q["agreement"], "head SQNR dB": q["sqnr_db"]})
                log(f"{name} split {start} {dtype}: agreement {q['agreement']:.4f}, SQNR {q['sqnr_db']:.2f} dB ({time.perf_counter() - t0:.0f} s)")
            ref, half = pair
            half["d agreement"] = half["FP32 agreement"] - ref["FP32 agreement"]
            half["d SQNR dB"] = half["head SQNR dB"] - ref["head SQNR dB"]
            rows += pair
    within = all(abs(r["d agreement"]) <= MAX_AGREEMENT and abs(r["d SQNR dB"]) <= MAX_SQNR_DB for r in rows if "d SQNR dB" in r)
    verdict = f"fp16 within +-{MAX_AGREEMENT} agreement / +-{MAX_SQNR_DB} dB of fp32 on every split: {'yes' if within else 'NO'}"
    table = format_table(rows, COLUMNS, floatfmt=".4f")
    write_text_atomic(out / "float16.json", json_text({"rows": rows, "scored_images": NUM, "within": within}))
    write_text_atomic(out / "float16.md", table + "\n\n" + verdict + "\n")
    click.echo(table + "\n" + verdict)


if __name__ == "__main__":
    main()
