"""QAT against PTQ on held-out images, run as a user would (`qyolo-trt quantize` / `qyolo-trt qat` subprocesses).

For each model: PTQ (UH, the quantize default for the bit width; at 8 bits also +bias correction; reconstruction, the
start of `qat`'s default) and QAT variants (EMA / QC on or off), each fine-tuning the one start model (``qat --start``;
``--start uh``: the plain UH model), trained on images TRAIN, scored on the disjoint images EVAL: head / output SQNR
and FP32 agreement (``eval.evaluate.quality``), optionally label mAP50-95 (``--map``: with its drop from FP32 and the
paired-bootstrap 95% interval, ``compare`` on the EVAL split), plus each command's wall time and peak RSS
(``os.wait4``; a QAT row's ``total_s`` adds its start's), QAT's flipped weights in its last epoch, the epoch it kept
(-1: its start) and its whole-image loss on the training images at the start and after each epoch. JSON + a Markdown
table.

    python tools/bench_qat.py --model ../shared/data/weights/yolov5n.onnx --train 0:64 --eval 64:96 --bits 4 --map
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx

from qyolo_trt.data import list_images
from qyolo_trt.eval.compare import Variant, compare
from qyolo_trt.eval.evaluate import quality

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REFIT = ["--scale-lr", "1e-4", "--bias-lr", "1e-4"]  # the step-size and bias rates the QC phase refits at (defaults: 0)
VARIANTS = {"qat": [], "qat-last": ["--keep-last"], "qat-no-ema": ["--no-ema"], "qat-qc": ["--qc", *REFIT],
            "qat-qc-no-ema": ["--qc", "--no-ema", *REFIT]}  # fmt: skip


def run(cmd: list[str]) -> tuple[dict, float, float]:
    """Run a CLI command with --json; its result, wall seconds and peak RSS (MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "qyolo_trt", *cmd, "--json"], stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return json.loads(out), time.perf_counter() - start, usage.ru_maxrss / 1024


def split(spec: str) -> slice:
    a, b = spec.split(":")
    return slice(int(a), int(b))


def bench(model: Path, args: argparse.Namespace, tmp: Path) -> list[dict]:
    tmp.mkdir(parents=True)
    images = list_images(args.data / "images")
    train, held = images[split(args.train)], images[split(args.eval)]
    listing = tmp / "train.txt"
    listing.write_text("\n".join(str(p) for p in train), encoding="utf-8")
    fp32 = onnx.load(model)
    bits = ["--bits", str(args.bits)]
    commands = {"ptq-uh": ["quantize", str(model), "--images", str(listing), *bits]}
    if args.bits == 8:
        commands["ptq-uh+bc"] = [*commands["ptq-uh"], "--bias-correction"]
    commands["ptq-rc"] = [*commands["ptq-uh"], "--reconstruct", "--reconstruct-num-images", str(len(train)), *(["--reconstruct-iters", str(args.rc_iters)] if args.rc_iters is not None else [])]
    start = tmp / f"{model.stem}.ptq-{args.start}.onnx"
    extra = [*(["--epochs", str(args.epochs)] if args.epochs is not None else []), *args.qat_args.split(), "--start", str(start)]
    for name in args.variants.split(","):
        commands[name] = ["qat", str(model), "--images", str(listing), *extra, *VARIANTS[name]]
    rows, walls = [], {}
    for name, cmd in commands.items():
        out = tmp / f"{model.stem}.{name}.onnx"
        result, wall, rss = run([*cmd, "-o", str(out)])
        walls[name] = wall
        row = {"model": model.stem, "row": name, "bits": args.bits, "train": len(train), "eval": len(held), "wall_s": round(wall, 1),
               "total_s": round(wall + (walls[f"ptq-{args.start}"] if name in VARIANTS else 0), 1), "peak_rss_mb": round(rss),
               **quality(onnx.load(out), fp32, held)}  # fmt: skip
        if stats := result.get("stats"):
            last = stats["epochs"][-1] if stats["epochs"] else {}
            row |= {"epochs": len(stats["epochs"]), "flipped": last.get("flipped_weights"), "flipped_ema": last.get("flipped_ema"),
                    "loss_before": stats["loss_before"], "loss_after": stats["loss_after"], "kept_epoch": stats["kept_epoch"],
                    "whole_loss": [stats["whole_loss_start"], *(e.get("whole_loss") for e in stats["epochs"])]}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    if args.map:
        add_label_map(model, train, held, args.data / "instances.json", rows, {name: tmp / f"{model.stem}.{name}.onnx" for name in commands})
    return rows


def add_label_map(model: Path, train: list[Path], held: list[Path], data: Path, rows: list[dict], files: dict[str, Path]) -> None:
    """Each row's label mAP50-95 on the held-out images and its drop from FP32 with the paired-bootstrap 95% interval
    (``compare``, every model in one pass)."""
    extra = lambda fp32, calib: [Variant(name, onnx.load(path), "TensorRT", 0.0) for name, path in files.items()]  # noqa: E731
    scored = compare(model, train, held, data, methods=("uh",), modes=("symmetric",), peers=False, bias_correction=False, extra_variants=extra)
    by_label = {r["label"]: r for r in scored["rows"]}
    for row in rows:
        r = by_label[row["row"]]
        row |= {"map50_95": r["map50_95"], "drop": r["drop"], "drop_ci": [r["drop_low"], r["drop_high"]]}
    rows.insert(0, {"model": model.stem, "row": "fp32", "map50_95": by_label["fp32"]["map50_95"], "eval": len(held)})


COLUMNS = ["model", "row", "bits", "sqnr_db", "output_sqnr_db", "agreement", "map50_95", "drop_ci", "flipped", "flipped_ema", "kept_epoch",
           "wall_s", "total_s", "peak_rss_mb"]


def markdown(rows: list[dict]) -> str:
    cell = lambda v: "" if v is None else f"{v:.4f}" if isinstance(v, float) else f"[{v[0]:+.3f}, {v[1]:+.3f}]" if isinstance(v, list) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(c)) for c in COLUMNS) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", help="FP32 ONNX (repeatable; default: the shared yolov5n)")
    parser.add_argument("--data", type=Path, default=SHARED / "coco", help="images/ + labels/")
    parser.add_argument("--train", default="0:64", help="training (and calibration) images, START:END")
    parser.add_argument("--eval", default="64:96", help="held-out scoring images, START:END")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None, help="QAT epochs (default: the CLI's)")
    parser.add_argument("--variants", default="qat", help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--qat-args", default="", help="extra qat options for every variant, e.g. '--lr 1e-3'")
    parser.add_argument("--start", choices=("rc", "uh"), default="rc", help="the PTQ row every QAT variant fine-tunes (qat --start)")
    parser.add_argument("--rc-iters", type=int, default=None, help="reconstruction steps per block (default: the CLI's)")
    parser.add_argument("--map", action="store_true", help="also label mAP50-95 on the EVAL split")
    parser.add_argument("--json", type=Path, default=Path("bench_qat.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qyolo-bench-qat-") as tmp:
        rows = [r for m in args.model or [SHARED / "weights" / "yolov5n.onnx"] for r in bench(m, args, Path(tmp) / m.stem)]
    args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(markdown(rows))


if __name__ == "__main__":
    main()
