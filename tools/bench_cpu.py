#!/usr/bin/env python
"""CPU speed of our INT8 QDQ model against its FP32 model, all variants interleaved in ONE run.

    python tools/bench_cpu.py [--model M.onnx] [--calib DIR] [--ort-static] [--iters 100] [-o bench_cpu.json]

Builds our QDQ model (``qyolo_trt.calib.calibrate`` UH + ``qyolo_trt.qdq.quantize``, TensorRT placement),
optionally ONNX Runtime's ``quantize_static`` QDQ model for comparison, then times on OpenVINO (FP32 with f32
forced and with OpenVINO's default precision, bf16 where the CPU has it; INT8 in the default precision) and on
ONNX Runtime. Writes the raw results as JSON and prints a Markdown table of speed ratios (never bare times:
they depend on the machine). Also reports, per model, how many convolutions OpenVINO executes in int8.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from qyolo_trt.backends import get_runner
from qyolo_trt.backends.openvino.runtime_model import layer_times, onnx_node_precisions
from qyolo_trt.bench import Variant, input_shape, make_input, plan, run_bench, schedule
from qyolo_trt.calib import calibrate
from qyolo_trt.data import ImageLoader, list_images
from qyolo_trt.defaults import default_calib, default_model
from qyolo_trt.fileio import write_json_atomic, write_text_atomic
from qyolo_trt.model import load_detector
from qyolo_trt.qdq import quantize

INT8 = {"i8", "u8"}


def our_qdq(model_path: Path, calib: str, num_images: int | None, mode: str, out: Path) -> Path:
    """Calibrate (UH) and quantize ``model_path`` with qyolo-trt; the QDQ model is written to ``out``."""
    model, _ = load_detector(model_path)
    scales = calibrate(model, calib, methods=("uh",), num_images=num_images)["uh"]
    onnx.save(quantize(model, scales, mode=mode).model, out)
    return out


def ort_static_qdq(model_path: Path, calib: str, num_images: int | None, out: Path) -> Path:
    """ONNX Runtime's ``quantize_static`` (QDQ, per-channel, symmetric int8, its default placement), for comparison."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    info = load_detector(model_path)[1]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(ImageLoader(list_images(calib), imgsz=info.imgsz, limit=num_images))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {info.input_name: batch.images}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(model_path), str(pre))
    quantize_static(
        str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )  # fmt: skip
    return out


def float_convs(model_path: Path) -> list[str]:
    """ONNX convs that OpenVINO (default precision) does not execute in int8."""
    with get_runner("openvino", model_path) as runner:
        precisions = onnx_node_precisions(runner.compiled.get_runtime_model())
    convs = {n.name for n in onnx.load(str(model_path), load_external_data=False).graph.node if n.op_type == "Conv"}
    return sorted(name for name in convs if precisions.get(name) not in INT8)


def profile(variants: list[Variant], rounds: int) -> dict[str, dict[str, float]]:
    """Median per-round milliseconds by "layer type / kernel" for each OpenVINO variant, rounds interleaved."""
    with contextlib.ExitStack() as stack:
        runners = [stack.enter_context(get_runner("openvino", v.artifact, **v.options, perf_count=True)) for v in variants]
        feeds = [{r.input_name: make_input(input_shape(v.artifact, v.backend), 1)} for r, v in zip(runners, variants)]
        samples: list[list[dict[str, float]]] = [[] for _ in variants]
        for i in schedule(len(variants), rounds):
            runners[i].infer(feeds[i])
            samples[i].append(layer_times(runners[i].request))
    return {
        v.label: {k: float(np.median([t.get(k, 0.0) for t in runs])) for k in {k for t in runs for k in t}}
        for v, runs in zip(variants, samples)
    }


def profile_table(prof: dict[str, dict[str, float]], top: int = 14) -> str:
    """Markdown: the ``top`` most expensive layer kinds (median ms per inference) for each variant."""
    keys = sorted({k for p in prof.values() for k in p}, key=lambda k: -max(p.get(k, 0.0) for p in prof.values()))
    lines = ["| layer / kernel | " + " | ".join(prof) + " |", "|---" * (len(prof) + 1) + "|"]
    lines += ["| sum of layers | " + " | ".join(f"{sum(p.values()):.2f}" for p in prof.values()) + " |"]
    lines += [f"| {k} | " + " | ".join(f"{p.get(k, 0.0):.2f}" for p in prof.values()) + " |" for k in keys[:top]]
    return "\n".join(lines)


def ratio_table(result: dict[str, Any]) -> str:
    """Markdown: each row's speed-up (p50) against the FP32 baselines (OpenVINO f32 forced and default)."""
    lines = [
        "| variant | backend | OpenVINO int8 convs | " + " | ".join(f"x vs {b}" for b in result["baselines"]) + " |",
        "|---" * (3 + len(result["baselines"])) + "|",
    ]
    for r in result["rows"]:
        counts = r["runner"].get("conv_precisions") or {}
        int8 = f"{sum(v for k, v in counts.items() if k in INT8)}/{sum(counts.values())}" if counts else "-"
        ratios = " | ".join(f"{r['ratios'][b]:.2f}x" for b in result["baselines"])
        lines.append(f"| {r['label']} | {r['backend']} | {int8} | {ratios} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="FP32 ONNX detector (default: the embedded yolov5n.onnx)")
    ap.add_argument("--calib", default=None, help="calibration images (default: the embedded calib_data/)")
    ap.add_argument("--num-images", type=int, default=None)
    ap.add_argument("--mode", default="shifted", help="our quantize mode (shifted: the TensorRT default; symmetric; asymmetric)")
    ap.add_argument("--qdq", type=Path, default=None, help="use this QDQ model instead of building ours")
    ap.add_argument("--ort-static", action="store_true", help="also time ONNX Runtime quantize_static's QDQ placement")
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime rows")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, metavar="ROUNDS", help="also profile OpenVINO layers for ROUNDS interleaved rounds")
    ap.add_argument("--workdir", type=Path, default=None, help="where the QDQ models go (default: a temporary folder)")
    ap.add_argument("-o", "--output", type=Path, default=Path("bench_cpu.json"))
    args = ap.parse_args(argv)

    fp32 = args.model or default_model()
    calib = args.calib or str(default_calib())
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_cpu_"))
    work.mkdir(parents=True, exist_ok=True)
    qdq = args.qdq or our_qdq(fp32, calib, args.num_images, args.mode, work / f"{fp32.stem}.qdq.onnx")
    int8 = [qdq] + ([ort_static_qdq(fp32, calib, args.num_images, work / f"{fp32.stem}.ort_static.qdq.onnx")] if args.ort_static else [])

    variants = plan([fp32, *int8], "openvino", args.threads) + ([] if args.no_ort else plan([fp32, qdq], "ort", args.threads))
    print(f"timing {len(variants)} variants interleaved: {args.warmup} warmup + {args.iters} rounds", file=sys.stderr)
    result = run_bench(variants, warmup=args.warmup, iters=args.iters)
    result["float_convs_openvino"] = {str(m): float_convs(m) for m in int8}
    result["command"] = " ".join(["python", "tools/bench_cpu.py", *(argv if argv is not None else sys.argv[1:])])
    table = ratio_table(result)
    if args.profile:
        result["profile_ms"] = profile([v for v in variants if v.backend == "openvino"], args.profile)
        table += "\n\nOpenVINO per-layer medians (ms, PERF_COUNT):\n" + profile_table(result["profile_ms"])
    result["table"] = table
    write_json_atomic(args.output, result)
    write_text_atomic(args.output.with_suffix(".md"), table + "\n")
    print(table)
    for model, names in result["float_convs_openvino"].items():
        print(f"{Path(model).name}: convs not in int8 on OpenVINO: {', '.join(names) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
