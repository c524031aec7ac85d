#!/usr/bin/env python
"""CPU speed of our INT8 QDQ models, placed per target, against the FP32 model and peers, interleaved in ONE run per runtime.

    python tools/bench_cpu.py [--model M.onnx] [--calib DIR] [--num-images N] [--nncf] [--ort-static] [--no-ort | --no-openvino]
                              [--batches 1,8] [--hint latency|throughput] [--iters 100] [-o bench_cpu.json]

Builds our QDQ models (UH scales; ``--target tensorrt`` in ``--mode``, ``--target openvino`` and ``--target ort`` in
their default forms), optionally NNCF's (``--nncf``) and ONNX Runtime's ``quantize_static`` QDQ models (``--ort-static``:
its defaults, and its uint8-activation form), then times, per batch size (a static-batch copy of every model when the
model's batch is static), on OpenVINO (FP32 with f32 forced and in OpenVINO's default precision, bf16 where the CPU has
it; every INT8 model in the default) and on ONNX Runtime. Writes the raw results as JSON and prints Markdown tables of
speed ratios (never bare times: they depend on the machine), with how many convolutions OpenVINO executes in int8.
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
from onnx import numpy_helper

from qyolo_trt.backends import get_runner
from qyolo_trt.backends.openvino.runtime_model import layer_times, onnx_node_precisions
from qyolo_trt.bench import HINTS, Variant, input_shape, make_input, plan, run_bench, schedule
from qyolo_trt.calib import calibrate
from qyolo_trt.data import ImageLoader, list_images
from qyolo_trt.calib.scales import ScalesFile
from qyolo_trt.defaults import DEFAULT_MODE, TARGETS, default_calib, default_model
from qyolo_trt.fileio import write_json_atomic, write_text_atomic
from qyolo_trt.model import load_detector
from qyolo_trt.qdq.config import QuantizeConfig
from qyolo_trt.qdq.pipeline import run

INT8 = {"i8", "u8"}


def our_qdq(model: onnx.ModelProto, scales: ScalesFile, calib: list[Path], target: str, mode: str | None, out: Path) -> Path:
    """``model`` quantized for ``target`` by qyolo-trt (the ranges a target measures: on ``calib``), written to ``out``."""
    onnx.save(run(model, scales, QuantizeConfig(target=target, mode=mode, bias_images=calib, bias_num_images=len(calib))).model, out)
    return out


def ort_static_qdq(model_path: Path, calib: list[Path], out: Path, uint8: bool = False) -> Path:
    """ONNX Runtime's ``quantize_static`` with its defaults (QDQ, int8 activations; every op it knows, decode included),
    or with uint8 activations and per-channel weights (the form its x86 kernels run fastest)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    info = load_detector(model_path)[1]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(ImageLoader(calib, imgsz=info.imgsz))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {info.input_name: batch.images}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(model_path), str(pre))
    options = {"activation_type": QuantType.QUInt8, "per_channel": True} if uint8 else {}
    quantize_static(str(pre), str(out), Reader(), **options)
    return out


def nncf_qdq(model_path: Path, calib: list[Path], out: Path) -> Path:
    """NNCF's post-training quantization (``qyolo_trt.eval.peers.nncf_ptq``: performance preset, head convs float)."""
    from qyolo_trt.eval.peers import nncf_ptq
    from qyolo_trt.qdq import head_conv_outputs

    model, info = load_detector(model_path)
    onnx.save(nncf_ptq(model_path, info, calib, head_conv_outputs(model)).model, out)
    return out


def static_batch(path: Path, batch: int, out: Path) -> Path:
    """``out``: a copy of a batch-1 detector with a static batch of ``batch`` (kept when it exists): the input's first
    dimension and the leading 1 of every constant Reshape shape (the head's) and Resize size set to ``batch``; inferred
    shapes dropped."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"} | {
        n.input[3] for n in model.graph.node if n.op_type == "Resize" and len(n.input) > 3}  # constant-folded sizes (ORT pre-processing)
    for init in model.graph.initializer:
        if init.name in shapes and (v := numpy_helper.to_array(init)).ndim == 1 and v.size and v[0] == 1:
            init.CopyFrom(numpy_helper.from_array(np.concatenate([[batch], v[1:]]).astype(v.dtype), init.name))
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in shapes:
            v = numpy_helper.to_array(node.attribute[0].t)
            if v.ndim == 1 and v.size and v[0] == 1:
                node.attribute[0].t.CopyFrom(numpy_helper.from_array(np.concatenate([[batch], v[1:]]).astype(v.dtype)))
    del model.graph.value_info[:]
    for o in model.graph.output:
        o.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(out))
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--model", type=Path, default=None, help="FP32 ONNX detector (default: the embedded yolov5n.onnx)")
    ap.add_argument("--calib", default=None, help="calibration images (default: the embedded calib_data/)")
    ap.add_argument("--num-images", type=int, default=None)
    ap.add_argument("--mode", default=DEFAULT_MODE, help="the TensorRT placement's form (shifted: its default; symmetric; asymmetric)")
    ap.add_argument("--openvino-modes", default="", help="also ``--target openvino`` in these forms, e.g. symmetric,shifted (the target's default form is always timed)")
    ap.add_argument("--nncf", action="store_true", help="also time NNCF's QDQ model on OpenVINO")
    ap.add_argument("--ort-static", action="store_true", help="also time ONNX Runtime quantize_static's QDQ models (default, uint8)")
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime run")
    ap.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO run")
    ap.add_argument("--batches", default="1", help="comma-separated batch sizes, each its own interleaved runs")
    ap.add_argument("--hint", choices=HINTS, default=HINTS[0], help="OpenVINO performance hint")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--profile", type=int, default=0, metavar="ROUNDS", help="also profile OpenVINO layers (batch 1) for ROUNDS interleaved rounds")
    ap.add_argument("--workdir", type=Path, default=None, help="where the QDQ models go (default: a temporary folder); models already there are reused")
    ap.add_argument("-o", "--output", type=Path, default=Path("bench_cpu.json"))
    args = ap.parse_args(argv)

    fp32 = args.model or default_model()
    calib = list_images(args.calib or str(default_calib()), limit=args.num_images)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_cpu_"))
    work.mkdir(parents=True, exist_ok=True)
    stem = fp32.stem
    model = load_detector(fp32)[0]
    scales = calibrate(model, calib, methods=("uh",))["uh"]

    def built(name: str, make: Any) -> Path:
        return out if (out := work / f"{stem}.{name}.qdq.onnx").is_file() else make(out)

    ours = {t: built(t, lambda out, t=t: our_qdq(model, scales, calib, t, args.mode if t == "tensorrt" else None, out)) for t in TARGETS}
    peers_ov = [built("nncf", lambda out: nncf_qdq(fp32, calib, out))] if args.nncf else []
    peers_ort = [built("ort_static", lambda out: ort_static_qdq(fp32, calib, out)),
                 built("ort_static_u8", lambda out: ort_static_qdq(fp32, calib, out, uint8=True))] if args.ort_static else []
    ov_modes = [built(f"openvino-{m}", lambda out, m=m: our_qdq(model, scales, calib, "openvino", m, out)) for m in filter(None, args.openvino_modes.split(","))]
    runs = {} if args.no_openvino else {"openvino": [fp32, *peers_ov, ours["tensorrt"], ours["openvino"], *ov_modes]}
    if not args.no_ort:
        runs["ort"] = [fp32, *peers_ort, ours["tensorrt"], ours["ort"]]
    results: dict[str, Any] = {"command": " ".join(["python", "tools/bench_cpu.py", *(argv if argv is not None else sys.argv[1:])]), "runs": {}}
    tables = []
    for batch in [int(b) for b in args.batches.split(",")]:
        for backend, models in runs.items():
            files = models if batch == 1 else [static_batch(m, batch, work / f"b{batch}" / m.name) for m in models]
            hint = args.hint if backend == "openvino" else HINTS[0]
            print(f"{backend}, batch {batch}, {hint}: {len(files)} models interleaved, {args.warmup} warmup + {args.iters} rounds", file=sys.stderr)
            result = run_bench(plan(files, backend, args.threads, hint=hint), batch=batch, warmup=args.warmup, iters=args.iters)
            results["runs"][f"{backend}/b{batch}/{hint}"] = result
            tables.append(f"{backend}, batch {batch}, {hint} hint:\n" + ratio_table(result))
    results["float_convs_openvino"] = {str(m): float_convs(m) for m in runs.get("openvino", [])[1:]}
    table = "\n\n".join(tables)
    if args.profile and "openvino" in runs:
        results["profile_ms"] = profile(plan(runs["openvino"], "openvino", args.threads, "default"), args.profile)
        table += "\n\nOpenVINO per-layer medians (ms, PERF_COUNT):\n" + profile_table(results["profile_ms"])
    results["table"] = table
    write_json_atomic(args.output, results)
    write_text_atomic(args.output.with_suffix(".md"), table + "\n")
    print(table)
    for model, names in results["float_convs_openvino"].items():
        print(f"{Path(model).name}: convs not in int8 on OpenVINO: {', '.join(names) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
