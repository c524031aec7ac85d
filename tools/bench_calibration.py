"""Benchmark qyolo-trt calibration against a plain FP32 ONNX Runtime pass and ORT's own calibrators.

Every measurement runs in its own subprocess (peak RSS = that process's ru_maxrss), on the real model and
images in ../shared/data, and all of them come from one run of this script:

- ratio: our calibration wall time (UH, one streamed pass, image decoding included) / one plain FP32 ORT pass
  over the same images (decoding included); both are run ``--rounds`` times alternately, the fastest kept
  (also as CPU time, and at 10 N images, where the fixed costs -- session, shape inference, clip searches -- fade);
- the same calibration with the full histogram (``--sample 1``) instead of the default sampled one;
- ORT ``onnxruntime.quantization`` calibrators (MinMax, Entropy, Percentile; their default options, the same
  op types as ours) on the same images: time and peak RSS;
- our peak RSS at N and 10 N images (the image list repeated).

Usage: python tools/bench_calibration.py [-n 8] [--rounds 2] [-o bench_calibration.json]
Writes the JSON and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("QYOLO_SHARED_DATA", REPO.parent / "shared" / "data"))
ORT_METHODS = {"ort-minmax": "MinMax", "ort-entropy": "Entropy", "ort-percentile": "Percentile"}
OP_TYPES = ["Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Concat", "MaxPool", "Resize"]


# ---- workers (run in a subprocess each) ------------------------------------------------------

def _paths(images: Path, n: int, repeat: int) -> list[Path]:
    from qyolo_trt.data import list_images

    return list_images(images)[:n] * repeat


def _plain(model: Path, paths: list[Path]) -> dict:
    from qyolo_trt.backends.ort.session import make_session
    from qyolo_trt.data import ImageLoader
    from qyolo_trt.model import load_detector

    _, info = load_detector(model)
    session = make_session(str(model))
    for batch in ImageLoader(paths, imgsz=info.imgsz):
        session.run(None, {info.input_name: batch.images})
    return {}


def _ours(model: Path, paths: list[Path], methods: tuple[str, ...], sample_stride: int | None = None) -> dict:
    from qyolo_trt.calib import calibrate

    result = calibrate(model, paths, methods=methods, **({} if sample_stride is None else {"sample_stride": sample_stride}))
    return {"tensors": len(next(iter(result.values())).tensors)}


def _ort(model: Path, paths: list[Path], method: str) -> dict:
    from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

    from qyolo_trt.data import ImageLoader
    from qyolo_trt.model import load_detector

    _, info = load_detector(model)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(ImageLoader(paths, imgsz=info.imgsz))

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {info.input_name: batch.images}

    with tempfile.TemporaryDirectory() as tmp:
        calibrator = create_calibrator(
            model, OP_TYPES, augmented_model_path=str(Path(tmp) / "augmented.onnx"), calibrate_method=getattr(CalibrationMethod, method)
        )
        calibrator.collect_data(Reader())
        ranges = calibrator.compute_data()
    return {"tensors": len(ranges.data)}


def worker(kind: str, model: Path, images: Path, n: int, repeat: int) -> dict:
    """Run one measurement in this process; wall / CPU seconds exclude imports and model-independent setup."""
    import numpy  # noqa: F401 - imported before the clock starts, like onnxruntime below
    import onnxruntime  # noqa: F401

    paths = _paths(images, n, repeat)
    started, cpu = time.perf_counter(), time.process_time()
    if kind == "plain":
        extra = _plain(model, paths)
    elif kind in ("ours", "ours-full"):
        extra = _ours(model, paths, ("uh",), sample_stride=1 if kind == "ours-full" else None)
    elif kind == "ours-all":
        extra = _ours(model, paths, ("uh", "minmax", "percentile", "entropy", "mse"))
    else:
        extra = _ort(model, paths, ORT_METHODS[kind])
    return {
        "kind": kind,
        "images": len(paths),
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }


# ---- orchestration ---------------------------------------------------------------------------

def measure(kind: str, args: argparse.Namespace, repeat: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--model", str(args.model), "--images", str(args.images), "-n", str(args.num_images), "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"{kind}: failed ({tail[:200]})", file=sys.stderr)
        return {"kind": kind, "images": args.num_images * repeat, "error": tail[:500]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])  # ORT's calibrators print to stdout
    print(f"{kind} x{result['images']}: {result['seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB", file=sys.stderr)
    return result


def run_all(args: argparse.Namespace) -> dict:
    rounds = {"plain": [], "ours": []}
    for _ in range(args.rounds):  # alternate: the shared machine's load drifts
        for kind in rounds:
            rounds[kind].append(measure(kind, args))
    best = {k: min(v, key=lambda r: r.get("seconds", float("inf"))) for k, v in rounds.items()}
    ort = [measure(kind, args) for kind in ORT_METHODS]
    ours_full = measure("ours-full", args)
    ours_all = measure("ours-all", args)
    ours_10n = measure("ours", args, repeat=10)
    plain_10n = measure("plain", args, repeat=10)
    entropy = next(r for r in ort if r["kind"] == "ort-entropy")
    ratio = best["ours"]["seconds"] / best["plain"]["seconds"]
    return {
        "model": str(args.model),
        "images": args.num_images,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rounds": rounds,
        "plain": best["plain"],
        "ours": best["ours"],
        "ours_full_histogram": ours_full,
        "ours_all_methods": ours_all,
        "ours_10n": ours_10n,
        "plain_10n": plain_10n,
        "ort": ort,
        "ratio_vs_plain_pass": ratio,
        "cpu_ratio_vs_plain_pass": best["ours"]["cpu_seconds"] / best["plain"]["cpu_seconds"],
        "ratio_vs_plain_pass_10n": ours_10n.get("seconds", float("nan")) / plain_10n.get("seconds", float("nan")),
        "speedup_vs_ort_entropy": entropy.get("seconds", float("nan")) / best["ours"]["seconds"],
        "rss_10n_over_n": ours_10n.get("peak_rss_mb", float("nan")) / best["ours"]["peak_rss_mb"],
    }


def table(report: dict) -> str:
    rows = [
        ("plain FP32 ORT pass", report["plain"]),
        ("qyolo-trt calibrate (uh)", report["ours"]),
        ("qyolo-trt calibrate (uh), --sample 1 (full histogram)", report["ours_full_histogram"]),
        ("qyolo-trt calibrate (all 5 methods)", report["ours_all_methods"]),
        *((f"ORT {r['kind'][4:]} calibrator", r) for r in report["ort"]),
        ("plain FP32 ORT pass, 10 N images", report["plain_10n"]),
        ("qyolo-trt calibrate (uh), 10 N images", report["ours_10n"]),
    ]
    lines = ["| run | images | wall s | CPU s | peak RSS MB |", "|---|---|---|---|---|"]
    for name, r in rows:
        if "error" in r:
            lines.append(f"| {name} | {r['images']} | failed: {r['error'][:60]} | | |")
        else:
            lines.append(f"| {name} | {r['images']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['peak_rss_mb']:.0f} |")
    lines += [
        "",
        f"- calibration / plain pass: **{report['ratio_vs_plain_pass']:.2f}** wall (target <= 1.3), "
        f"{report['cpu_ratio_vs_plain_pass']:.2f} CPU; at 10 N images {report['ratio_vs_plain_pass_10n']:.2f} wall",
        f"- speed-up vs ORT Entropy: **{report['speedup_vs_ort_entropy']:.1f}x** (target >= 3)",
        f"- peak RSS 10 N / N: **{report['rss_10n_over_n']:.2f}** (target <= 1.2)",
        f"- {report['cpu_count']} CPUs, load average {report['load_average'][0]:.1f} at the end",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=SHARED / "weights" / "yolov5n.onnx")
    parser.add_argument("--images", type=Path, default=SHARED / "coco" / "images")
    parser.add_argument("-n", "--num-images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("-o", "--output", type=Path, default=Path("bench_calibration.json"))
    parser.add_argument("--worker", choices=["plain", "ours", "ours-full", "ours-all", *ORT_METHODS], help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.images, args.num_images, args.repeat)))
        return
    if not args.model.is_file() or not args.images.exists():
        sys.exit(f"error: shared data not found ({args.model}, {args.images})")
    report = run_all(args)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
