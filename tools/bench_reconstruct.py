"""Cost and accuracy of reconstruction PTQ (qyolo_trt.torchq.reconstruct) against plain UH calibration: one JSON + a table.

    python tools/bench_reconstruct.py --model ../shared/data/weights/yolov5n.onnx --calib calib.txt --eval eval.txt \
        [--bits 8|4] [--iters N] [--drop-prob P] [--no-refit-bias] [--json out.json]

Calibrates (UH) on --calib, quantizes (shifted at 8 bits; symmetric + ``lower_bits`` below), reconstructs on the same
images in a child process (its peak RSS and CPU time measured alone), and scores both QDQ models on the disjoint --eval
images with ``qyolo_trt.eval.evaluate`` (FP32 agreement, head SQNR; label mAP when the images have labels).
Timings on a shared machine are indicative only: wall and CPU seconds are both recorded.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import onnx

from qyolo_trt.calib import calibrate
from qyolo_trt.data.feeds import load_feeds
from qyolo_trt.defaults import RECONSTRUCT_DROP_PROB, RECONSTRUCT_ITERS
from qyolo_trt.eval.evaluate import evaluate
from qyolo_trt.qdq import lint, quantize
from qyolo_trt.qdq.passes.lowbit import lower_bits

SCORE_KEYS = ("agreement", "sqnr_db", "map50_95", "map50")


def _reconstruct_child(paths: dict[str, str], images: list[str], options: dict, queue: mp.Queue) -> None:
    from qyolo_trt.torchq.reconstruct import reconstruct

    fp32 = onnx.load(paths["fp32"])
    out, stats = reconstruct(onnx.load(paths["qdq"]), fp32, load_feeds(fp32, images, len(images)), **options)
    onnx.save(out, paths["out"])
    queue.put(stats)


def _run_child(paths: dict[str, str], images: list[str], options: dict) -> tuple[dict, dict]:
    """reconstruct() in a spawned process: (stats, cost: wall / cpu seconds, peak RSS of that process alone)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = ctx.Process(target=_reconstruct_child, args=(paths, images, options, queue))
    proc.start()
    stats = queue.get()
    proc.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return stats, {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(after.ru_maxrss / 1e6, 3)}


def _score(model: Path, fp32: Path, eval_list: Path, labels: bool) -> dict:
    row = evaluate(model, eval_list, reference=fp32, labels=labels)
    return {k: row.get(k) for k in SCORE_KEYS if row.get(k) is not None}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--calib", type=Path, required=True, help="image list (.txt) to calibrate and reconstruct on")
    ap.add_argument("--eval", type=Path, required=True, help="disjoint image list (.txt) to score on")
    ap.add_argument("--bits", type=int, default=8, choices=(8, 4))
    ap.add_argument("--iters", type=int, default=RECONSTRUCT_ITERS)
    ap.add_argument("--drop-prob", type=float, default=RECONSTRUCT_DROP_PROB)
    ap.add_argument("--no-refit-bias", action="store_true")
    ap.add_argument("--no-labels", action="store_true", help="score FP32 agreement and SQNR only (other classes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    images = [line.strip() for line in args.calib.read_text().splitlines() if line.strip()]
    fp32 = onnx.load(args.model)
    t0 = time.perf_counter()
    scales = calibrate(fp32, images, bits=args.bits)["uh"]
    calib_s = time.perf_counter() - t0
    mode = "shifted" if args.bits == 8 else "symmetric"
    qdq = quantize(fp32, scales, mode=mode).model
    if args.bits < 8:
        qdq = lower_bits(qdq, fp32, args.bits)
    options = {"iters": args.iters, "drop_prob": args.drop_prob, "refit_bias": not args.no_refit_bias, "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="bench-reconstruct-") as tmp:
        paths = {"fp32": str(args.model), "qdq": f"{tmp}/qdq.onnx", "out": f"{tmp}/out.onnx"}
        onnx.save(qdq, paths["qdq"])
        stats, cost = _run_child(paths, images, options)
        out = onnx.load(paths["out"])
        labels = not args.no_labels
        result = {
            "model": args.model.name, "bits": args.bits, "mode": mode, "calib_images": len(images),
            "eval_images": len(args.eval.read_text().split()), "options": options,
            "calibration_s": round(calib_s, 1), **cost, "ratio_to_calibration": round(cost["wall_s"] / calib_s, 1),
            "lint_errors": sum(i.severity == "error" for i in lint(out)),
            "before": _score(Path(paths["qdq"]), args.model, args.eval, labels),
            "after": _score(Path(paths["out"]), args.model, args.eval, labels),
            "fp32": _score(args.model, args.model, args.eval, labels) if labels else {},
            "stats": stats,
        }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(_table(result))
    return result


def _table(r: dict) -> str:
    keys = [k for k in SCORE_KEYS if k in r["before"]]
    lines = [f"{r['model']} W{r['bits']} {r['mode']}: calibrate/reconstruct on {r['calib_images']}, score on {r['eval_images']} images; "
             f"reconstruct {r['wall_s']} s wall ({r['cpu_s']} s CPU, x{r['ratio_to_calibration']} calibration), "
             f"peak RSS {r['peak_rss_gb']} GB, lint errors {r['lint_errors']}",
             "| row | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]  # fmt: skip
    for name in ("fp32", "before", "after"):
        if r[name]:
            lines.append(f"| {name} | " + " | ".join(f"{r[name][k]:.4f}" if isinstance(r[name].get(k), float) else str(r[name].get(k)) for k in keys) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
