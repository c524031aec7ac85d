"""`qyolo-trt plot-hist`: activation histograms with every calibrator's clip marked, one PNG per tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..defaults import BITS_RANGE, DEFAULT_BITS, METHODS, default_calib, default_model
from .common import emit, format_table, json_option, log, split_csv


@click.command("plot-hist")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--images", default=None, help="Images to histogram (default: the embedded calib_data/).")
@click.option("--tensor", "tensors", multiple=True, metavar="NAME",
              help="Tensor name, or a node name for its data input (repeatable), e.g. /model.21/conv/Conv.")
@click.option("--top", type=click.IntRange(1), default=None, help="Instead: the K tensors whose tail reaches furthest past UH's clip.")
@click.option("--num-images", type=click.IntRange(1), default=32, show_default=True, help="Use the first N images.")
@click.option("--methods", default=",".join(METHODS), show_default=True, help="Calibrators whose clips are drawn.")
@click.option("--bits", type=click.IntRange(*BITS_RANGE), default=DEFAULT_BITS, show_default=True, help="Grid the clips are searched for.")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder for the PNGs.")
@json_option
def plot_hist_cmd(
    model: Path | None, images: str | None, tensors: tuple[str, ...], top: int | None, num_images: int, methods: str, bits: int,
    out_dir: Path, as_json: bool,
) -> None:
    """Histogram (log counts) of activation tensors of MODEL (default: the embedded yolov5n) over the
    images, with the clip of every calibrator marked. The paper's figure (the SiLU band in [-0.2785, 0]):
    `qyolo-trt plot-hist ../shared/data/weights/yolov5n.onnx --images ../shared/data/coco/images --tensor /model.21/conv/Conv -o plots`."""
    from ..analysis.plots import plot_histograms
    from ..model import load_onnx

    model = model or default_model()
    names = split_csv(methods)
    plots = plot_histograms(load_onnx(model), images or default_calib(), out_dir, tensors=tensors, top=top, num_images=num_images,
                            methods=names, bits=bits)  # fmt: skip
    log(f"plot-hist: wrote {len(plots)} PNG(s) to {out_dir}")
    emit({"model": str(model), "plots": plots}, as_json, _text)


def _text(result: dict[str, Any]) -> str:
    rows = [{"tensor": p["tensor"], "min": p["min"], "max": p["max"], **{m: r["clip"] for m, r in p["ranges"].items()}, "png": p["png"]}
            for p in result["plots"]]  # fmt: skip
    methods = list(result["plots"][0]["ranges"]) if result["plots"] else []
    return "clips per method:\n" + format_table(rows, ["tensor", "min", "max", *methods, "png"])
