#!/usr/bin/env python3
"""How FP32 agreement grows as a quantized model's head error shrinks, and how much it moves on its own.

    python tools/agreement_floor.py --fp32 ../shared/data/weights/yolov5n.onnx --qdq v5n.qdq.onnx --score 32:64 \
                                    [--factors 1,0.7,0.5,0.35,0.25] [--jitter 8] [--json agreement_floor.json]

The FP32 model and the QDQ model run side by side in one graph; each head conv output the decode reads becomes
``fp32 + a * (qdq - fp32)``, so at factor ``a`` the head error is the QDQ model's own, in its own places and shape,
scaled: head SQNR rises by ``-20 log10 a`` dB, exactly. Scored like any model (``eval.evaluate.quality``) on the images
``--score`` (START:END of the shared COCO images; never the QDQ model's calibration images): FP32 agreement and output
SQNR. It answers what agreement a head SQNR buys with this error structure (white noise of the same SQNR costs far more
agreement, so it is no yardstick).

``--jitter N``: N copies of the QDQ model with every float bias moved by one unit in the last place, up or down at
random (seed k for copy k), scored the same way: the spread of agreement and SQNR a model shows under a perturbation
that changes none of its quantization choices (how far apart two rows must be to differ). Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qyolo_trt.cli.common import format_table  # noqa: E402
from qyolo_trt.data import list_images  # noqa: E402
from qyolo_trt.eval.evaluate import quality  # noqa: E402
from qyolo_trt.model import copy_model, default_opset, load_onnx  # noqa: E402
from qyolo_trt.qdq import head_conv_outputs  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
PREFIX = "fp32/"
COLUMNS = ["factor", "head SQNR dB", "FP32 agreement", "output SQNR dB"]


def scaled_error(fp32: onnx.ModelProto, qdq: onnx.ModelProto, factor: float) -> onnx.ModelProto:
    """``qdq`` whose decode reads ``fp32 + factor * (qdq - fp32)`` at every head conv output (both models in one graph)."""
    if default_opset(fp32) != default_opset(qdq):
        raise SystemExit("the FP32 and QDQ models must share the default-domain opset")
    image = fp32.graph.input[0].name
    ref = onnx.compose.add_prefix(copy_model(fp32), PREFIX)
    out = copy_model(qdq)
    graph = out.graph
    for node in ref.graph.node:
        node.input[:] = [image if i == PREFIX + image else i for i in node.input]
    graph.node.extend(ref.graph.node)
    graph.initializer.extend(ref.graph.initializer)
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(factor, np.float32), "error_factor"))
    for name in head_conv_outputs(fp32):
        mixed = f"{name}_scaled_error"
        for node in graph.node:
            node.input[:] = [mixed if i == name else i for i in node.input]
        graph.node.extend([
            onnx.helper.make_node("Sub", [name, PREFIX + name], [f"{name}_error"]),
            onnx.helper.make_node("Mul", [f"{name}_error", "error_factor"], [f"{name}_error_scaled"]),
            onnx.helper.make_node("Add", [PREFIX + name, f"{name}_error_scaled"], [mixed]),
        ])  # fmt: skip
    merged = gs.import_onnx(out)
    merged.toposort()
    return gs.export_onnx(merged)


def jittered(qdq: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """``qdq`` with each float bias (a Conv's third input) one ulp up or down, at random."""
    out = copy_model(qdq)
    biases = {n.input[2] for n in out.graph.node if n.op_type == "Conv" and len(n.input) > 2}
    rng = np.random.default_rng(seed)
    for t in out.graph.initializer:
        if t.name in biases and t.data_type == onnx.TensorProto.FLOAT:
            b = onnx.numpy_helper.to_array(t)
            toward = np.where(rng.random(b.shape) < 0.5, -np.inf, np.inf).astype(np.float32)  # float32: one float32 ulp
            t.CopyFrom(onnx.numpy_helper.from_array(np.nextafter(b, toward), t.name))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--qdq", type=Path, required=True, help="a QDQ model of --fp32 (quantize's output)")
    parser.add_argument("--score", required=True, help="scoring images START:END of --images (not the QDQ model's calibration images)")
    parser.add_argument("--images", type=Path, default=SHARED / "coco" / "images")
    parser.add_argument("--factors", default="1,0.7,0.5,0.35,0.25")
    parser.add_argument("--jitter", type=int, default=0, help="copies with every float bias moved by one ulp (0: none)")
    parser.add_argument("--json", type=Path, default=Path("agreement_floor.json"))
    args = parser.parse_args()
    fp32, qdq = load_onnx(args.fp32), load_onnx(args.qdq)
    start, end = (int(v) for v in args.score.split(":"))
    images = list_images(args.images)[start:end]
    head_db = quality(qdq, fp32, images)["sqnr_db"]
    rows = []
    for factor in (float(v) for v in args.factors.split(",")):
        q = quality(scaled_error(fp32, qdq, factor), fp32, images)
        rows.append({"factor": factor, "head SQNR dB": round(head_db - 20 * math.log10(factor), 2), "FP32 agreement": round(q["agreement"], 4),
                     "output SQNR dB": round(q["output_sqnr_db"], 2)})  # fmt: skip
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    jitter = []
    for seed in range(args.jitter):
        q = quality(jittered(qdq, seed), fp32, images)
        jitter.append({"seed": seed, **{k: round(q[k], 4) for k in ("agreement", "sqnr_db", "output_sqnr_db")}})
        print(json.dumps(jitter[-1]), file=sys.stderr, flush=True)
    result = {"fp32": str(args.fp32), "qdq": str(args.qdq), "score": args.score, "rows": rows, "jitter": jitter}
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(rows, COLUMNS))
    if jitter:
        print(format_table(jitter, ["seed", "agreement", "sqnr_db", "output_sqnr_db"]))


if __name__ == "__main__":
    main()
