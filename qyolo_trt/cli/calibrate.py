"""`qyolo-trt calibrate`: one streamed ONNX Runtime pass -> per-tensor INT8 scales (JSON, TensorRT cache)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..defaults import BITS_RANGE, DEFAULT_BITS, DEFAULT_METHOD, DEFAULT_PERCENTILE, METHODS
from .common import FiniteFloatRange, emit, json_option, log

METHOD_CHOICES = [*METHODS, "all"]


def _per_method(path: Path, method: str, several: bool) -> Path:
    """``scales.json`` -> ``scales.<method>.json`` when several methods are written."""
    return path.with_name(f"{path.stem}.{method}{path.suffix}") if several else path


@click.command("calibrate")
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images", "images", type=click.Path(path_type=Path), help="Image folder, YOLO dataset, .txt list, COCO json or image [default: embedded calib_data/].")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default=DEFAULT_METHOD, show_default=True, help="'all': every method from the same pass, one file each: SCALES.<method>.json (and OUT.<method>.cache).")
@click.option("--percentile", type=FiniteFloatRange(0, 100, min_open=True), default=DEFAULT_PERCENTILE, show_default=True, help="Percentile for --method percentile.")
@click.option("--num-images", type=click.IntRange(1), default=None, help="Use at most N readable images [default: all].")
@click.option("--batch", type=click.IntRange(1, 1024), default=1, show_default=True, help="Batch size (models with a static batch run one image at a time).")
@click.option("--bins", type=click.IntRange(16, 1 << 16), default=2048, show_default=True, help="Histogram bins per side.")
@click.option("--bits", type=click.IntRange(*BITS_RANGE), default=DEFAULT_BITS, show_default=True, help="Search the clips for this grid (4, 6: low-bit simulation with `quantize --bits`).")
@click.option("--sample", "sample_stride", type=click.IntRange(min=1), default=15, show_default=True, help="Histogram the bulk of each tensor (|v| < 1/4 of its range) from every Nth value, counted N times; tails and min/max use every value. ~2x cheaper folding; on yolov5n the UH clips' error moves <= 1.6% (mean 0.04%) vs --sample 1 (the full histogram).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Scales file (JSON) to write.")
@click.option("--calib-cache", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the symmetric scales as a TensorRT calibration cache.")
@click.option("--from-cache", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Run no images: convert this TensorRT calibration cache (trtexec, Polygraphy, ModelOpt) into a scales file for MODEL.")
@json_option
def calibrate_cmd(
    model: Path | None,
    images: Path | None,
    method: str,
    percentile: float,
    num_images: int | None,
    batch: int,
    bins: int,
    bits: int,
    sample_stride: int,
    output: Path,
    calib_cache: Path | None,
    from_cache: Path | None,
    as_json: bool,
) -> None:
    """Calibrate MODEL (default: the embedded yolov5n.onnx) on images: per-tensor INT8 scales.

    One ONNX Runtime pass streams every quantizable activation into a histogram; UH, minmax, percentile,
    entropy and mse are computed from the same statistics.
    """
    from ..api import calibrate
    from ..calib import ScalesFile
    from ..calib.scales import trt_cache_text
    from ..defaults import default_model
    from ..fileio import json_text, refuse_overwrite, write_all
    from ..model import load_onnx, model_hash

    model_path = model or default_model()
    several = method == "all"
    names = list(METHODS) if several else [method]
    outputs = [_per_method(output, n, several) for n in names] + ([_per_method(calib_cache, n, several) for n in names] if calib_cache else [])
    refuse_overwrite(outputs, [model_path, from_cache, images])
    started = time.perf_counter()
    if from_cache is not None:
        converted = ScalesFile.from_trt_cache(from_cache, model_hash(load_onnx(model_path)))
        results = {converted.method: converted}
    else:
        results = calibrate(model_path, images, methods=names, num_images=num_images, batch=batch, bins=bins, percentile=percentile,
                            bits=bits, sample_stride=sample_stride)
    files = [(_per_method(output, n, several), json_text(sc.to_dict()).encode()) for n, sc in results.items()]
    if calib_cache is not None:
        files += [(_per_method(calib_cache, n, several), trt_cache_text({t: r.scale for t, r in sc.tensors.items()}).encode())
                  for n, sc in results.items()]
    write_all(files)  # all or nothing
    written = [str(p) for p, _ in files]
    first = next(iter(results.values()))
    result = {
        "method": method if from_cache is None else first.method,
        "methods": list(results),
        "tensors": len(first.tensors),
        "images": first.num_images,
        "skipped": int(first.params.get("skipped_images", 0)),
        "warnings": sum(1 for r in first.tensors.values() if r.warning),
        "seconds": round(time.perf_counter() - started, 3),
        "outputs": written,
    }
    if result["skipped"]:
        log(f"skipped {result['skipped']} unreadable image(s)")
    emit(result, as_json, lambda r: (
        f"calibrated {r['tensors']} tensors on {r['images']} image(s) ({', '.join(r['methods'])}) in {r['seconds']:.1f} s\n"
        + "\n".join(f"wrote {p}" for p in r["outputs"])
    ))
