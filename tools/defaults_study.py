#!/usr/bin/env python3
"""The protocol that decides `build`'s and `quantize`'s defaults: both real models, two disjoint splits, label-free.

    python tools/defaults_study.py [--data ../shared/data] [--out runs/defaults] [--models yolov5n,fall_yolov8s]
                                   [--num-calib 32] [--iters 200] [--variants shifted,shifted+bc,...]

Split A calibrates on COCO images 0-31 and scores on 32-63; split B calibrates on 64-95 and scores on 0-31 (no image
is calibrated on and scored in the same split; the two scoring sets are disjoint). Every variant is scored against the
FP32 model on its split's scoring images: FP32 agreement (mAP50-95 against FP32's confident detections), head SQNR
(the head convs' raw outputs) and output SQNR (the graph outputs: decoded boxes and scores). A default changes only
when its variant wins on both models and both splits. Writes
OUT/defaults.json and OUT/defaults.md (the table, then wins per variant against the current `build` default).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qyolo_trt.calib import calibrate  # noqa: E402
from qyolo_trt.cli.common import format_table, log  # noqa: E402
from qyolo_trt.data import list_images  # noqa: E402
from qyolo_trt.data.feeds import load_feeds  # noqa: E402
from qyolo_trt.eval.evaluate import quality  # noqa: E402
from qyolo_trt.fileio import json_text, write_text_atomic  # noqa: E402
from qyolo_trt.model import load_onnx  # noqa: E402
from qyolo_trt.qdq import QuantizeConfig  # noqa: E402
from qyolo_trt.qdq.passes.bias_correction import bias_correct  # noqa: E402
from qyolo_trt.qdq.passes.float16 import to_float16  # noqa: E402
from qyolo_trt.qdq.pipeline import run  # noqa: E402

SPLITS = {"A": (slice(0, 32), slice(32, 64)), "B": (slice(64, 96), slice(0, 32))}  # (calibrate, score)
BASELINE = "shifted+bc"  # today's `build` default
COLUMNS = ["model", "split", "variant", "TensorRT", "FP32 agreement", "head SQNR dB", "output SQNR dB", "seconds"]
# variant -> (rewrite + reconstruction options, bias correction, fp16 float parts): the passes after reconstruction
# (bias correction, then fp16) are applied here in the pipeline's order, so variants share their reconstruction run.
VARIANTS: dict[str, tuple[dict, bool, bool]] = {
    "shifted": ({"mode": "shifted"}, False, False),
    "shifted+bc": ({"mode": "shifted"}, True, False),
    "shifted+bc/fp16": ({"mode": "shifted"}, True, True),
    "symmetric+bc": ({"mode": "symmetric"}, True, False),
    "symmetric+bc/fp16": ({"mode": "symmetric"}, True, True),
    "shifted+pad": ({"mode": "shifted", "shift_padded": True}, False, False),  # padded convs' inputs shifted too
    "shifted+pad+bc": ({"mode": "shifted", "shift_padded": True}, True, False),
    "shifted+rc": ({"mode": "shifted", "reconstruct": True}, False, False),
    "shifted+pad+rc": ({"mode": "shifted", "shift_padded": True, "reconstruct": True}, False, False),
    "shifted+rc+bc": ({"mode": "shifted", "reconstruct": True}, True, False),
    "shifted+rc/fp16": ({"mode": "shifted", "reconstruct": True}, False, True),
    "symmetric+rc": ({"mode": "symmetric", "reconstruct": True}, False, False),
    "asymmetric": ({"mode": "asymmetric"}, False, False),
    "ort": ({"target": "ort"}, False, False),
    "ort+rc": ({"target": "ort", "reconstruct": True}, False, False),
    "openvino": ({"target": "openvino"}, False, False),
    "openvino+rc": ({"target": "openvino", "reconstruct": True}, False, False),
    # W4A4 (scales calibrated for 4 bits): the first conv quantized (the placement before 4-bit defaults) or float
    "w4a4": ({"bits": 4, "keep_float": ("head",)}, False, False),
    "w4a4+rc": ({"bits": 4, "keep_float": ("head",), "reconstruct": True}, False, False),
    "w4a4-first-float": ({"bits": 4, "keep_float": ("head", "first-conv")}, False, False),
    "w4a4-first-float+rc": ({"bits": 4, "keep_float": ("head", "first-conv"), "reconstruct": True}, False, False),
}


def _variants(fp32: onnx.ModelProto, calib: list[Path], names: list[str], iters: int) -> dict[str, tuple[onnx.ModelProto, float]]:
    """name -> (QDQ model, seconds)."""
    calibrated: dict[int, tuple[object, float]] = {}  # activation bits -> (UH scales, seconds)
    feeds = load_feeds(fp32, calib, len(calib))
    runs: dict[str, tuple[onnx.ModelProto, float]] = {}
    out: dict[str, tuple[onnx.ModelProto, float]] = {}
    for name in names:
        options, bc, fp16 = VARIANTS[name]
        key = repr(sorted(options.items()))
        if key not in runs:
            bits = options.get("bits", 8)
            if bits not in calibrated:
                t0 = time.perf_counter()
                calibrated[bits] = (calibrate(fp32, calib, methods=("uh",), bits=bits, progress_desc="calibrate")["uh"], time.perf_counter() - t0)
            scales, calib_s = calibrated[bits]
            t1 = time.perf_counter()
            config = QuantizeConfig(**options, reconstruct_images=calib, reconstruct_num_images=len(calib), reconstruct_iters=iters,
                                    bias_images=calib, bias_num_images=len(calib))  # the ranges a target measures: on the split's images
            runs[key] = (run(fp32, scales, config).model, calib_s + time.perf_counter() - t1)
            log(f"  {key}: {runs[key][1]:.0f} s")
        model, seconds = runs[key]
        t1 = time.perf_counter()
        model = bias_correct(model, fp32, feeds)[0] if bc else model
        model = to_float16(model)[0] if fp16 else model
        out[name] = (model, seconds + time.perf_counter() - t1)
    return out


def _tensorrt(name: str) -> bool:
    """Whether the variant is a model TensorRT runs (the TensorRT placement, no zero points)."""
    options = VARIANTS[name][0]
    return options.get("target", "tensorrt") == "tensorrt" and options.get("mode") != "asymmetric"


def _wins(rows: list[dict], better: Callable[[dict, dict], bool]) -> dict[str, str]:
    """variant -> "won k of n (model, split) cells" against ``BASELINE``."""
    base = {(r["model"], r["split"]): r for r in rows if r["variant"] == BASELINE}
    tally: dict[str, list[bool]] = {}
    for r in rows:
        if r["variant"] != BASELINE and (r["model"], r["split"]) in base:
            tally.setdefault(r["variant"], []).append(better(r, base[(r["model"], r["split"])]))
    return {v: f"{sum(w)}/{len(w)}" for v, w in tally.items()}


@click.command()
@click.option("--data", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "data", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "runs" / "defaults", show_default=True)
@click.option("--models", default="yolov5n,fall_yolov8s", show_default=True)
@click.option("--splits", default="A,B", show_default=True)
@click.option("--variants", default=",".join(VARIANTS), show_default=True)
@click.option("--num-calib", type=click.IntRange(1, 32), default=32, show_default=True, help="First N images of each calibration part.")
@click.option("--iters", type=click.IntRange(0), default=None, help="Reconstruction steps per block (default: the library's).")
def main(data: Path, out: Path, models: str, splits: str, variants: str, num_calib: int, iters: int | None) -> None:
    from qyolo_trt.defaults import RECONSTRUCT_ITERS

    paths = list_images(data / "coco" / "images")
    names = [v for v in variants.split(",") if v]
    if bad := [v for v in names if v not in VARIANTS]:
        raise click.UsageError(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
    rows = []
    for model_name in models.split(","):
        fp32 = load_onnx(data / "weights" / f"{model_name}.onnx")
        for split in splits.split(","):
            calib_part, score_part = SPLITS[split]
            calib, score = paths[calib_part][:num_calib], paths[score_part]
            log(f"{model_name} split {split}: calibrate on {len(calib)}, score on {len(score)}")
            for name, (model, seconds) in _variants(fp32, calib, names, iters if iters is not None else RECONSTRUCT_ITERS).items():
                q = quality(model, fp32, score)
                rows.append({"model": model_name, "split": split, "variant": name, "TensorRT": "yes" if _tensorrt(name) else "no",
                             "FP32 agreement": q["agreement"], "head SQNR dB": q["sqnr_db"], "output SQNR dB": q["output_sqnr_db"],
                             "seconds": round(seconds, 1)})
                log(f"  {name}: agreement {q['agreement']:.4f}, SQNR {q['sqnr_db']:.2f} dB, output {q['output_sqnr_db']:.2f} dB")
    wins = {"agreement": _wins(rows, lambda r, b: r["FP32 agreement"] > b["FP32 agreement"]),
            "sqnr": _wins(rows, lambda r, b: r["head SQNR dB"] > b["head SQNR dB"])}
    table = format_table(rows, COLUMNS, floatfmt=".4f")
    verdict = "\n".join(f"- {v}: beats {BASELINE} on agreement in {wins['agreement'][v]} cells, on SQNR in {wins['sqnr'][v]}"
                        for v in wins["agreement"])
    write_text_atomic(out / "defaults.json", json_text({"rows": rows, "wins_vs": BASELINE, "wins": wins, "num_calib": num_calib,
                                                        "iters": iters}))
    write_text_atomic(out / "defaults.md", table + "\n\n" + verdict + "\n")
    click.echo(table + "\n\n" + verdict)


if __name__ == "__main__":
    main()
