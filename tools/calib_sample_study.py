"""How much does histogram sampling (``calibrate --sample N``) move the chosen clips? Evidence for the default.

One ONNX Runtime pass over N images folds every tensor at every stride at once (the same model outputs), then
compares each stride's clips with the full histogram's (stride 1):

- UH excess error: the full histogram's squared error at the sampled UH clip over its error at its own optimum,
  symmetric (TensorRT) and asymmetric (zero-point) forms -- max and mean over the tensors;
- per method: the largest relative clip change and how many tensors' clips moved by more than one bin;
- the baseline: the same numbers for the full histogram of N *other* images (what the image choice alone does).

Usage: python tools/calib_sample_study.py [-n 16] [--strides 7 15 31]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from qyolo_trt.backends.ort.session import make_session
from qyolo_trt.calib import collect as C
from qyolo_trt.calib.histogram import Histogram, Scratch
from qyolo_trt.calib.methods import METHODS, MethodOptions, compute_range
from qyolo_trt.calib.methods.search import GridScorer
from qyolo_trt.data import ImageLoader, list_images
from qyolo_trt.model import load_detector

SHARED = Path(os.environ.get("QYOLO_SHARED_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))


def fold_all(model, info, paths: list[Path], strides: list[int]) -> dict[int, dict[str, Histogram]]:
    """One pass over ``paths``; one histogram per target and stride."""
    targets = C.calibration_targets(model)
    derived = C.derivations(model, targets)
    streamed = [t for t in targets if t not in derived and t != info.input_name]
    session = make_session(C._exposed_model(model, streamed))
    stats = {s: {t: Histogram() for t in targets if t not in derived} for s in strides}
    scratch = Scratch()
    for batch in ImageLoader(paths, imgsz=info.imgsz):
        outputs = session.run(streamed, {info.input_name: batch.images}) + [batch.images]
        for s, hists in stats.items():
            for name, value in zip([*streamed, info.input_name], outputs):
                hists[name].update(value, scratch, s)
    for hists in stats.values():
        for out, (inputs, repeat) in derived.items():
            hists[out] = Histogram.merged([hists[t] for t in inputs], repeat)
    return stats


def compare(full: dict[str, Histogram], other: dict[str, Histogram]) -> str:
    options = MethodOptions()
    sym, asym, cells = [], [], []
    for name, hist in full.items():
        grid = GridScorer(hist)
        exact, approx = (compute_range("uh", h[name], options, name) for h in (full, other))
        s = [grid.error(np.zeros(1), np.array([r.clip / 127]), -127, 127)[0] for r in (exact, approx)]
        a = [grid.error(np.array([r.lower]), np.array([(r.upper - r.lower) / 255]), 0, 255)[0] for r in (exact, approx)]
        sym.append(s[1] / s[0] - 1)
        asym.append(a[1] / a[0] - 1)
    for method in METHODS:
        pairs = [(compute_range(method, full[n], options, n).clip, compute_range(method, other[n], options, n).clip, full[n].width) for n in full]
        rel = max(abs(b / a - 1) for a, b, _ in pairs)
        moved = sum(abs(b - a) > w for a, b, w in pairs)
        cells.append(f"{rel * 100:.1f}% / {moved}")
    return f"| {max(sym) * 100:.2f}% / {np.mean(sym) * 100:.3f}% | {max(asym) * 100:.2f}% / {np.mean(asym) * 100:.3f}% | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=SHARED / "weights" / "yolov5n.onnx")
    parser.add_argument("--images", type=Path, default=SHARED / "coco" / "images")
    parser.add_argument("-n", "--num-images", type=int, default=16)
    parser.add_argument("--strides", type=int, nargs="+", default=[7, 15, 31])
    args = parser.parse_args()
    model, info = load_detector(args.model)
    paths = list_images(args.images)
    n = args.num_images
    stats = fold_all(model, info, paths[:n], [1, *args.strides])
    baseline = fold_all(model, info, paths[n : 2 * n], [1])[1]
    methods = " | ".join(f"{m}: max rel / >1 bin" for m in METHODS)
    print(f"| histogram ({n} images) | UH sym excess MSE max / mean | UH asym excess max / mean | {methods} |")
    print("|---" * (3 + len(METHODS)) + "|")
    print(f"| full, {n} other images | " + compare(stats[1], baseline)[2:])
    for s in args.strides:
        print(f"| --sample {s} | " + compare(stats[1], stats[s])[2:])


if __name__ == "__main__":
    main()
