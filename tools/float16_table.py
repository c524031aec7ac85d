#!/usr/bin/env python3
"""FP16 float parts of INT8 engines: accuracy in ONNX Runtime and the engine's precision mix in TensorRT-RTX.

    python tools/float16_table.py [--data ../shared/data] [--out runs/float16] [--splits 0,32]

For each real model (yolov5n, fall_yolov8s) and each split, calibrate with `build`'s recipe (UH, shifted, bias
correction) on 32 shared COCO images, then score the FP32-float and FP16-float QDQ models on 32 other images (FP32
agreement and head SQNR against the FP32 model; ONNX Runtime runs the FP16 graph with fp16 storage between nodes)
and build both with TensorRT-RTX for sm89 (layer outputs by dtype, engine layers). Writes OUT/float16.json and
OUT/float16.md. Latency needs a GPU: tools/gpu_smoke.sh.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click
import onnx

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
COLUMNS = ["model", "split", "float dtype", "FP32 agreement", "head SQNR dB", "Int8", "Half", "Float", "layers", "convs INT8"]


def _engine_mix(model: onnx.ModelProto) -> dict:
    from qyolo_trt.backends.tensorrt.builder import build_engine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(model, path)
        rep = build_engine(path, backend="tensorrt-rtx", precision="int8", targets=("sm89",)).report
    return {**rep.output_dtypes, "layers": len(rep.layers), "convs INT8": f"{rep.conv_int8}/{rep.conv_total}"}


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "data", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "runs" / "float16", show_default=True)
@click.option("--splits", default="0,32", show_default=True, help="First calibration image of each split (scored on the next 32).")
@click.option("--engines/--no-engines", default=True, show_default=True, help="Also build with TensorRT-RTX (precision mix).")
def main(data: Path, out: Path, splits: str, engines: bool) -> None:
    paths = list_images(data / "coco" / "images")
    rows = []
    for name in MODELS:
        fp32 = load_onnx(data / "weights" / f"{name}.onnx")
        for start in (int(s) for s in splits.split(",")):
            calib, score = paths[start : start + NUM], [p for p in paths if p not in paths[start : start + NUM]][start : start + NUM]
            for dtype in ("fp32", "fp16"):
                t0 = time.perf_counter()
                qdq = quantize(fp32, images=calib, config=Recipe(mode="shifted", bias_correction=True, float_dtype=dtype)).model
                q = quality(qdq, fp32, score)
                row = {"model": name, "split": f"calib {start}-{start + NUM - 1}", "float dtype": dtype,
                       "FP32 agreement": q["agreement"], "head SQNR dB": q["sqnr_db"]}
                if engines:
                    row.update(_engine_mix(qdq))
                rows.append(row)
                log(f"{name} split {start} {dtype}: agreement {q['agreement']:.4f}, SQNR {q['sqnr_db']:.2f} dB ({time.perf_counter() - t0:.0f} s)")
    table = format_table(rows, COLUMNS, floatfmt=".4f")
    write_text_atomic(out / "float16.json", json_text({"rows": rows, "scored_images": NUM}))
    write_text_atomic(out / "float16.md", table + "\n")
    click.echo(table)


if __name__ == "__main__":
    main()
